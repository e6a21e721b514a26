#!/usr/bin/env bash
# benchmarks/gpu.py with the project's venv where there is one, else python3 (a GPU machine's own
# Python); arguments pass through: benchmarks/gpu.sh --smoke, benchmarks/gpu.sh --batch_size=128.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
# Without these the check would fail at its first import with a traceback; say so in one line instead.
"$python" -c 'import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))' \
  tensorflow keras apache_beam absl ||
  { echo "error: $python lacks TensorFlow, Keras, Apache Beam or absl: install requirements.txt first" >&2; exit 2; }
exec "$python" benchmarks/gpu.py "$@"
