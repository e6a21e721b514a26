"""SIGTERM, as preemptible VMs, TPU hosts, `timeout` and schedulers send it,
through the real CLIs; and the faults a rerun meets after it.

- A teacher run stopped mid-interval saves a checkpoint at that step and says
  how to resume; the rerun resumes there and ends with the weights of an
  uninterrupted run of the same command. A copy of its checkpoints whose
  newest is then truncated (a disk that filled, a copy cut short) resumes
  from the one before, with one warning naming both, and ends alike.
- `./run_iteration.sh` stopped while its teacher trains passes the signal on:
  the teacher checkpoints, both exit with one line each, and no process of
  the run is left behind. Its newest checkpoint is then truncated (a disk
  that filled, a copy cut short): the rerun resumes from the one before with
  one warning naming both, and finishes.
- A labeling run stopped mid-pipeline leaves the previous output exactly as
  it was (a stand-in with its stats.json) and no temporary directory; a labeling run killed between its two
  commit renames (its previous output left at `OUTPUT.old-*`) is put back by
  the next run.
"""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
from faultlib import (
    ROOT,
    TINY_FLAGS,
    assert_same_weights,
    cli,
    digests,
    earlier_labeling_output,
    latest_checkpoint_step,
    processes_naming,
    run,
    start,
    terminate_when,
)

from efficientnet.model import export

pytestmark = pytest.mark.slow

STEPS, EVERY = 60, 20
TRAIN = [
    *TINY_FLAGS,
    "--dataset=digits",
    "--batch_size=16",
    f"--train_steps={STEPS}",
    f"--checkpoint_every_steps={EVERY}",
    f"--log_every_steps={EVERY}",
    "--warmup_epochs=0",
    "--deterministic",
]


def training_stopped(work_dir) -> dict:
    """A teacher stopped by SIGTERM after its first checkpoint, then rerun; a copy of its checkpoints
    with the newest truncated, run on; and an uninterrupted run beside them."""
    stopped_dir, straight_dir, truncated_dir = work_dir / "stopped", work_dir / "straight", work_dir / "truncated"
    command = cli("teacher.train", f"--model_dir={stopped_dir}", *TRAIN)
    with ThreadPoolExecutor(max_workers=2) as pool:
        straight = pool.submit(run, cli("teacher.train", f"--model_dir={straight_dir}", *TRAIN))
        stopped = terminate_when(start(command), lambda: latest_checkpoint_step(stopped_dir) >= EVERY)
        seen = {"stopped": stopped, "saved": latest_checkpoint_step(stopped_dir)}
        shutil.copytree(stopped_dir / "checkpoints", truncated_dir / "checkpoints")
        newest = truncated_dir / "checkpoints" / f"ckpt-{seen['saved']}.data-00000-of-00001"
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
        truncated = pool.submit(run, cli("teacher.train", f"--model_dir={truncated_dir}", *TRAIN))
        seen |= {"resumed": run(command), "straight": straight.result(), "truncated": truncated.result()}
    return seen | {"stopped_dir": stopped_dir, "straight_dir": straight_dir, "truncated_dir": truncated_dir}


def iteration_stopped(work_dir) -> dict:
    """`./run_iteration.sh --round 0` stopped by SIGTERM while its teacher trains; then its newest
    checkpoint truncated, and the same command rerun."""
    config = json.loads((ROOT / "configs" / "digits.json").read_text())
    config["train"] |= {"checkpoint_every_steps": EVERY, "log_every_steps": EVERY, "batch_size": 16}
    config["teacher"] = {"train_steps": STEPS, "warmup_epochs": 0}
    config["robustness"] = None
    (work_dir / "config.json").write_text(json.dumps(config))
    run_dir = work_dir / "run"
    command = [str(ROOT / "run_iteration.sh"), "--round", "0", "--config", "config.json", "--work_dir", "run"]
    checkpoints = run_dir / "round0-teacher"
    stopped = terminate_when(start(command, cwd=work_dir), lambda: latest_checkpoint_step(checkpoints) >= EVERY)
    seen = {
        "stopped": stopped,
        "left running": processes_naming(str(run_dir)),
        "saved": latest_checkpoint_step(checkpoints),
    }
    newest = sorted((checkpoints / "checkpoints").glob(f"ckpt-{seen['saved']}.data-*"))[0]
    newest.write_bytes(newest.read_bytes()[:100])
    seen["resumed"] = run(command, cwd=work_dir)
    return seen | {"run_dir": run_dir}


def labeling_stopped(work_dir, teacher: str) -> dict:
    """A labeling job stopped by SIGTERM mid-pipeline while it would replace a previous output;
    then that output moved to `OUTPUT.old-*` as a kill between the commit renames leaves it, and
    the job rerun."""
    output_dir = work_dir / "pseudo"
    earlier_labeling_output(output_dir)
    command = cli(
        "pseudolabel.run",
        "--input=digits",
        "--split=unlabeled",
        f"--teacher={teacher}",
        f"--output_dir={output_dir}",
        "--num_shards=2",
    )
    before = digests(output_dir)
    stopped = terminate_when(start(command), lambda: any(work_dir.glob("pseudo.tmp-*/spill")))
    seen = {
        "before": before,
        "stopped": stopped,
        "after": digests(output_dir),
        "leftovers": [path.name for path in work_dir.glob("pseudo.*")],
    }
    output_dir.rename(work_dir / "pseudo.old-0123abcd")
    seen["recovered"] = run(command)
    seen["after recovery"] = sorted(path.name for path in work_dir.iterdir())
    seen["records after recovery"] = json.loads((output_dir / "stats.json").read_text())["num_records"]
    return seen


def signals_scenario(work_dir, teacher) -> dict:
    (work_dir / "training").mkdir()
    (work_dir / "iteration").mkdir()
    (work_dir / "labeling").mkdir()
    with ThreadPoolExecutor(max_workers=2) as pool:
        training = pool.submit(training_stopped, work_dir / "training")
        iteration = pool.submit(iteration_stopped, work_dir / "iteration")
        labeling = pool.submit(labeling_stopped, work_dir / "labeling", teacher())
        return {"training": training, "iteration": iteration, "labeling": labeling}


BACKGROUND_SCENARIO = signals_scenario
BACKGROUND_PROCESSES = 2


def test_sigterm_checkpoints_at_once_and_the_rerun_ends_like_an_uninterrupted_run(background_outcome):
    seen = background_outcome["training"].result()
    stopped, saved, stopped_dir = seen["stopped"], seen["saved"], seen["stopped_dir"]
    assert stopped.returncode == 1, stopped.stderr[-4000:]
    assert "Traceback" not in stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == (
        f"error: stopped by SIGTERM at step {saved}/{STEPS}; saved {stopped_dir}/checkpoints/ckpt-{saved}; "
        "rerun the same command to resume from there"
    )
    assert EVERY < saved < STEPS
    assert not (stopped_dir / "run.lock").exists()
    resumed = seen["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resumed from {stopped_dir}/checkpoints/ckpt-{saved} at step {saved}" in resumed.stderr
    assert seen["straight"].returncode == 0, seen["straight"].stderr[-4000:]
    assert_same_weights(export.load_export(str(stopped_dir))[0], export.load_export(str(seen["straight_dir"]))[0])


def test_a_truncated_newest_checkpoint_falls_back_to_the_one_before_and_ends_alike(background_outcome):
    seen = background_outcome["training"].result()
    result, checkpoints = seen["truncated"], seen["truncated_dir"] / "checkpoints"
    assert result.returncode == 0, result.stderr[-4000:]
    warnings = [line for line in result.stderr.splitlines() if "cannot read checkpoint" in line]
    assert len(warnings) == 1, result.stderr[-4000:]
    assert f"cannot read checkpoint {checkpoints}/ckpt-{seen['saved']} (" in warnings[0]
    assert warnings[0].endswith(f"resuming from {checkpoints}/ckpt-{EVERY} instead")
    assert_same_weights(
        export.load_export(str(seen["truncated_dir"]))[0], export.load_export(str(seen["straight_dir"]))[0]
    )


def test_sigterm_to_run_iteration_reaches_its_step_and_leaves_no_process(background_outcome):
    seen = background_outcome["iteration"].result()
    stopped, saved = seen["stopped"], seen["saved"]
    assert stopped.returncode == 1, stopped.stderr[-4000:]
    assert "Traceback" not in stopped.stderr
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("error: ")]
    assert lines[0].startswith(f"error: stopped by SIGTERM at step {saved}/{STEPS}; saved "), lines
    assert lines[-1] == ("error: stopped by SIGTERM during step round0/teacher; rerun the same command to resume"), (
        lines
    )
    assert seen["left running"] == []
    assert EVERY < saved < STEPS


def test_run_iteration_resumes_its_step_past_a_truncated_checkpoint(background_outcome):
    seen = background_outcome["iteration"].result()
    resumed, saved, run_dir = seen["resumed"], seen["saved"], seen["run_dir"]
    assert resumed.returncode == 0, resumed.stderr[-6000:]
    checkpoints = run_dir / "round0-teacher" / "checkpoints"
    warnings = [line for line in resumed.stderr.splitlines() if "cannot read checkpoint" in line]
    assert len(warnings) == 1, resumed.stderr[-6000:]
    assert f"cannot read checkpoint {checkpoints}/ckpt-{saved} (" in warnings[0]
    assert warnings[0].endswith(f"resuming from {checkpoints}/ckpt-{EVERY} instead")
    assert f"resumed from {checkpoints}/ckpt-{EVERY} at step {EVERY}" in resumed.stderr
    assert (run_dir / "round0-teacher" / "export" / "model.json").exists()


def test_sigterm_to_labeling_leaves_the_previous_output_untouched(background_outcome):
    seen = background_outcome["labeling"].result()
    stopped = seen["stopped"]
    assert stopped.returncode == 1, stopped.stderr[-4000:]
    assert "Traceback" not in stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1].startswith("error: stopped by SIGTERM while labeling; ")
    assert stopped.stderr.strip().endswith("pseudo was not touched; rerun the same command to label again")
    assert seen["after"] == seen["before"]
    assert seen["leftovers"] == []


def test_a_labeling_run_killed_between_its_commit_renames_is_put_back(background_outcome):
    seen = background_outcome["labeling"].result()
    recovered = seen["recovered"]
    assert recovered.returncode == 0, recovered.stderr[-4000:]
    assert "put the previous output" in recovered.stderr and "pseudo.old-0123abcd back at" in recovered.stderr
    assert seen["after recovery"] == ["pseudo"]
    assert seen["records after recovery"] > 1  # the rerun's own output replaced the one put back
