"""`python -m efficientnet.model.summary` as a user runs it, in a real process.

The three command lines share one process (tests/cli_driver.py): each start is
mostly Python and TensorFlow importing. tests/test_console.py starts the CLI as
a fresh `python -m` process of its own.
"""

import os
from pathlib import Path

import pytest
from cli_driver import run_in_one_process

pytestmark = pytest.mark.slow  # real CLI processes
ROOT = Path(__file__).resolve().parents[1]
MODULE = "efficientnet.model.summary"
ENV = os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    b3, b0, b9 = run_in_one_process(
        MODULE,
        [["--model=efficientnet-b3"], ["--model=efficientnet-b0"], ["--model=efficientnet-b9"]],
        tmp_path_factory.mktemp("summary"),
        cwd=ROOT,
        env=ENV,
        timeout=300,
    )
    return {"b3": b3, "b0": b0, "b9": b9}


def test_summary_of_b3(results):
    result = results["b3"]
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "width            1.2" in out and "depth            1.4" in out and "resolution       300" in out
    assert "    4        5       3       2       6  48->96" in out
    assert "12,233,232 trainable, 12,320,528 with BN statistics" in out
    assert "multiply-adds    1.827 B" in out


def test_summary_of_b0_reports_paper_multiply_adds(results):
    result = results["b0"]
    assert result.returncode == 0, result.stderr
    assert "multiply-adds    0.386 B (385,814,752)" in result.stdout


def test_unknown_model_is_a_one_line_error(results):
    result = results["b9"]
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: unknown model 'efficientnet-b9'; valid names: efficientnet-b0, efficientnet-b1, efficientnet-b2, "
        "efficientnet-b3, efficientnet-b4, efficientnet-b5, efficientnet-b6, efficientnet-b7, efficientnet-b8, "
        "efficientnet-l2"
    )
    assert "Traceback" not in result.stderr
