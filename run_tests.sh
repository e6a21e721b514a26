#!/usr/bin/env bash
# Set-up (creates or reuses .venv from requirements.txt) and the full test
# suite. Extra arguments go to pytest, e.g. `./run_tests.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/ensure_venv.sh
exec python -m pytest "$@"
