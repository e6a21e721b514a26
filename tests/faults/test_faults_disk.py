"""A full disk, on a real small filesystem, through the real CLIs.

The runs write into a tmpfs mounted in a mount namespace of their own
(`unshare --mount --map-root-user`, so no root is needed where user
namespaces are allowed). It is sized to hold one checkpoint of the tiny
teacher but not two, then to one more checkpoint but not the export, then
enlarged (`mount -o remount,size=…`) as a user freeing space would; for the
labeling job, to what the previous output already uses plus a little. Each
failure must be one line naming the path and exit 1, the files committed
before must be unchanged, and the rerun must finish.

The namespace ends with its processes, and the tmpfs with it, so the steps
run inside one process there (`python test_faults_disk.py RESULT_JSON
MOUNT_POINT`, the `__main__` block below), which writes what it saw outside
the mount for the tests to read.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from faultlib import ENV, ROOT, TINY_FLAGS, cli, digests, earlier_labeling_output, error_line, run  # noqa: E402

pytestmark = pytest.mark.slow

CHECKPOINT_KIB = 2100  # one checkpoint of the tiny teacher (weights, EMA, optimizer slots)
TRAIN = [*TINY_FLAGS, "--dataset=digits", "--batch_size=16", "--train_steps=20", "--checkpoint_every_steps=10"]


def _resize(mount: Path, kib: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={kib}k", str(mount)], check=True)


def _used_kib(mount: Path) -> int:
    return int(subprocess.run(["df", "-k", str(mount)], capture_output=True, text=True).stdout.split()[-4])


def _outcome(result: subprocess.CompletedProcess) -> dict:
    return {"returncode": result.returncode, "line": error_line(result), "stderr": result.stderr[-3000:]}


def inside(result_path: Path, mount: Path) -> None:
    """The steps, run in the namespace (see the module docstring)."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={CHECKPOINT_KIB * 3 // 2}k", "tmpfs", str(mount)], check=True)
    seen = {}
    training = cli("teacher.train", f"--model_dir={mount}/teacher", *TRAIN)
    seen["training full"] = _outcome(run(training))
    seen["checkpoints after"] = sorted(path.name for path in (mount / "teacher" / "checkpoints").iterdir())
    _resize(mount, _used_kib(mount) + CHECKPOINT_KIB + 300)  # room for the last checkpoint, not the export
    seen["export full"] = _outcome(run(training))
    export = mount / "teacher" / "export"
    seen["in the export"] = sorted(path.name for path in export.iterdir()) if export.exists() else []
    _resize(mount, 30_000)
    seen["training rerun"] = _outcome(run(training))

    labeling = cli(
        "pseudolabel.run",
        "--input=digits",
        "--split=unlabeled",
        f"--teacher={mount}/teacher/export",
        f"--output_dir={mount}/pseudo",
        "--confidence_threshold=0",
        "--num_shards=2",
    )
    earlier_labeling_output(mount / "pseudo")
    seen["labels before"] = digests(mount / "pseudo")
    _resize(mount, _used_kib(mount) + 200)
    seen["labeling full"] = _outcome(run(labeling))
    seen["labels after"] = digests(mount / "pseudo")
    seen["beside the labels"] = sorted(path.name for path in mount.iterdir())
    _resize(mount, 30_000)
    seen["labeling rerun"] = _outcome(run(labeling))
    result_path.write_text(json.dumps(seen))


def disk_scenario(work_dir: Path) -> dict:
    """Runs `inside` in a mount namespace; what it saw, or why it could not run.

    Only drives processes, so it runs in the background from the start of the
    session (tests/conftest.py).
    """
    if shutil.which("unshare") is None:
        return {"skip": "needs util-linux's unshare to mount a small filesystem"}
    (work_dir / "mount").mkdir()
    command = ["unshare", "--mount", "--map-root-user", sys.executable, __file__, str(work_dir / "seen.json")]
    result = subprocess.run(
        [*command, str(work_dir / "mount")], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0 and "unshare failed" in result.stderr:
        return {"skip": f"mount namespaces are not allowed here: {result.stderr.strip()}"}
    assert result.returncode == 0, result.stderr[-6000:]
    return json.loads((work_dir / "seen.json").read_text()) | {"mount": str(work_dir / "mount")}


BACKGROUND_SCENARIO = disk_scenario


@pytest.fixture
def seen(background_outcome) -> dict:
    if "skip" in background_outcome:
        pytest.skip(background_outcome["skip"])
    return background_outcome


def test_a_checkpoint_or_export_on_a_full_disk_is_one_line_and_the_rerun_finishes(seen):
    full, mount = seen["training full"], seen["mount"]
    assert full["returncode"] == 1, full["stderr"]
    assert "Traceback" not in full["stderr"]
    assert full["line"].startswith(f"error: no space left on device writing {mount}/teacher/checkpoints/ckpt-20")
    assert full["line"].endswith("what was written before is intact: free space and rerun the same command")
    assert {"ckpt-10.index", "ckpt-10.data-00000-of-00001", "checkpoint"} <= set(seen["checkpoints after"])
    export_full = seen["export full"]
    assert export_full["returncode"] == 1, export_full["stderr"]
    assert f"resumed from {mount}/teacher/checkpoints/ckpt-10 at step 10" in export_full["stderr"]
    assert export_full["line"].startswith(f"error: no space left on device writing {mount}/teacher/export/")
    assert seen["in the export"] == []  # no partial copy left behind
    rerun = seen["training rerun"]
    assert rerun["returncode"] == 0, rerun["stderr"]
    assert f"resumed from {mount}/teacher/checkpoints/ckpt-20 at step 20" in rerun["stderr"]


def test_labels_on_a_full_disk_are_one_line_and_leave_the_previous_output_intact(seen):
    full, mount = seen["labeling full"], seen["mount"]
    assert full["returncode"] == 1, full["stderr"]
    assert "Traceback" not in full["stderr"]
    assert full["line"].startswith(f"error: no space left on device writing {mount}/pseudo.tmp-")
    assert seen["labels after"] == seen["labels before"]
    assert seen["beside the labels"] == ["pseudo", "teacher"]  # no temporary directory, no lock left
    assert seen["labeling rerun"]["returncode"] == 0, seen["labeling rerun"]["stderr"]


if __name__ == "__main__":
    inside(Path(sys.argv[1]), Path(sys.argv[2]))
