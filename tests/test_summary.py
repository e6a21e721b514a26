"""`python -m efficientnet.model.summary` as a user runs it, in a real process."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_summary(*flags):
    return subprocess.run(
        [sys.executable, "-m", "efficientnet.model.summary", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_summary_of_b3():
    result = run_summary("--model=efficientnet-b3")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "width            1.2" in out and "depth            1.4" in out and "resolution       300" in out
    assert "    4        5       3       2       6  48->96" in out
    assert "12,233,232 trainable, 12,320,528 with BN statistics" in out
    assert "multiply-adds    1.827 B" in out


def test_summary_of_b0_reports_paper_multiply_adds():
    result = run_summary("--model=efficientnet-b0")
    assert result.returncode == 0, result.stderr
    assert "multiply-adds    0.386 B (385,814,752)" in result.stdout


def test_unknown_model_is_a_one_line_error():
    result = run_summary("--model=efficientnet-b9")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: unknown model 'efficientnet-b9'; valid names: efficientnet-b0, efficientnet-b1, efficientnet-b2, "
        "efficientnet-b3, efficientnet-b4, efficientnet-b5, efficientnet-b6, efficientnet-b7, efficientnet-b8, "
        "efficientnet-l2"
    )
    assert "Traceback" not in result.stderr
