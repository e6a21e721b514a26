"""The GPU check (benchmarks/gpu.sh) runs end to end in its CPU smoke mode.

A GPU is lent rarely and briefly, so the script must not first fail there:
the smoke mode takes every code path (both models' compiled steps, the Beam
job and its bare loop, the JSON) with tiny sizes. CUDA_VISIBLE_DEVICES is
emptied so that it runs on the CPU even where a GPU is present.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def smoke_run(work_dir: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """The script in its smoke mode; it only drives a process, so it runs in the background (tests/conftest.py)."""
    output = work_dir / "gpu.json"
    return subprocess.run(
        [str(ROOT / "benchmarks" / "gpu.sh"), "--smoke", f"--output={output}"],
        cwd=ROOT,
        env=os.environ | {"CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    ), output


BACKGROUND_SCENARIO = smoke_run


@pytest.mark.slow
def test_smoke_mode_measures_every_figure_and_writes_them(background_outcome):
    completed, output = background_outcome
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(output.read_text())
    assert report["device"] == "CPU"
    assert report["settings"]["smoke"] is True
    for kind in ("training", "inference"):
        assert report[kind]["ours_img_s"] > 0 and report[kind]["keras_img_s"] > 0
        assert report[kind]["ratio"] > 0
    labeling = report["labeling"]
    assert labeling["beam_img_s"] > 0 and labeling["bare_compiled_img_s"] > 0 and labeling["ratio"] > 0
    assert labeling["labeled"] == labeling["num_images"] == report["settings"]["num_images"]
    lines = completed.stdout.splitlines()
    assert lines[0].startswith(f"device CPU, tensorflow {report['tensorflow']}")
    assert any(line.startswith("settings ") for line in lines)
    for kind in ("training", "inference"):
        assert any(line.startswith(kind) and "ours/keras" in line for line in lines)
    assert any(line.startswith("labeling ") and "beam/bare" in line for line in lines)
