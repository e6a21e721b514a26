"""The project as a package: the wheel a user installs, and what a Dataflow job ships.

Dataflow is not reachable here. DataflowRunner's `--dry_run=True` goes as far
as it can offline: it translates the job graph and builds and stages the
workers' files locally, then stops before submitting. Every Dataflow command
of the README and docs/ and configs/imagenet_tpu.json are run that way, with
their own flags.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from absl import flags
from cli_driver import run_in_one_process

from pseudolabel.run import split_argv

REPO = Path(__file__).resolve().parents[1]
# The documentation's placeholders, as well-formed names: Beam validates them, and a
# malformed bucket makes it look for a default bucket online.
PLACEHOLDERS = {"PROJECT": "my-project", "BUCKET": "my-bucket", "REGION": "us-central1", "REPO": "images"}
BEAM_CONTAINER = "gcr.io/cloud-dataflow/v1beta3/beam_python3.11_sdk:2.77.0"  # Beam's default for Python 3.11


def project_packages() -> list[str]:
    """Every folder of the repository holding an `__init__.py`, dotted."""
    return sorted(
        ".".join(init.parent.relative_to(REPO).parts)
        for top in REPO.iterdir()
        if (top / "__init__.py").is_file()
        for init in top.rglob("__init__.py")
    )


def project_modules() -> list[str]:
    """Every module of those packages, as a path relative to the repository."""
    return sorted(
        str(path.relative_to(REPO))
        for package in project_packages()
        for path in (REPO / package.replace(".", "/")).glob("*.py")
    )


def substitute_placeholders(text: str) -> str:
    return re.sub(r"\b(" + "|".join(PLACEHOLDERS) + r")\b", lambda match: PLACEHOLDERS[match.group(1)], text)


def documented_dataflow_commands() -> list[list[str]]:
    """Beam's flags of each distinct command of the README and docs/ that labels on Dataflow.

    Placeholders are filled in and `--dry_run=True` is left out, so the README's dry run of a
    command in docs/scaling.md counts as that command.
    """
    commands = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                if "pseudolabel.run" not in line:
                    continue
                command = shlex.split(substitute_placeholders(line))
                if command[:3] == ["python", "-m", "pseudolabel.run"] and "--runner=DataflowRunner" in command:
                    beam = split_argv(["pseudolabel.run", *command[3:]], flags.FLAGS)[1]
                    beam = [arg for arg in beam if arg != "--dry_run=True"]
                    if beam not in commands:
                        commands.append(beam)
    return commands


def config_dataflow_flags() -> list[str]:
    """Beam's flags in configs/imagenet_tpu.json, written as pipelines.iterate writes them."""
    settings = json.loads(substitute_placeholders((REPO / "configs" / "imagenet_tpu.json").read_text()))
    command = ["pseudolabel.run", *(f"--{key}={value}" for key, value in settings["pseudolabel"].items())]
    return split_argv(command, flags.FLAGS)[1]


@pytest.mark.slow  # one CLI process, two sdist builds
def test_dataflow_dry_runs_build_the_job_and_write_nothing(teacher, tmp_path):
    # Two commands, on CPU workers and on GPU workers from the Dockerfile's image; a third one
    # written anywhere in the documentation fails here until it gets a case below.
    commands = documented_dataflow_commands()
    gpus = [command for command in commands if any(arg.startswith("--sdk_container_image=") for arg in command)]
    assert len(commands) == 2 and len(gpus) == 1, commands
    gpu = gpus[0]
    (cpu,) = [command for command in commands if command is not gpu]
    scratch, output_dir = tmp_path / "tmp", tmp_path / "out" / "labels"
    scratch.mkdir()
    labeling = ["--input=digits", "--split=unlabeled", f"--teacher={teacher}", f"--output_dir={output_dir}"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pyproject.toml").write_text("[project\n")
    cases = [
        [*labeling, *gpu, "--dry_run=True"],
        [*labeling, *cpu, "--dry_run=True"],
        [*labeling, *config_dataflow_flags(), "--dry_run=True"],
        [*labeling, *cpu, "--dry_run=True", f"--setup_file={broken / 'pyproject.toml'}"],
        [*labeling, *(arg for arg in gpu if not arg.startswith("--sdk_container_image=")), "--dry_run=True"],
        [*labeling, "--dry_run=True"],  # on the local default runner
    ]
    env = os.environ | {"PYTHONPATH": str(REPO), "TMPDIR": str(scratch), "TF_CPP_MIN_LOG_LEVEL": "2"}
    results = run_in_one_process("pseudolabel.run", cases, tmp_path / "driver", cwd=REPO, env=env)

    for result in results[:3]:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    image = f"{PLACEHOLDERS['REGION']}-docker.pkg.dev/my-project/images/noisy-student:latest"
    assert results[0].stdout.splitlines() == [
        "dry run: DataflowRunner job graph built; would stage pickled_main_session, "
        f"submission_environment_dependencies.txt; workers start from {image}; "
        f"nothing submitted, nothing written to {output_dir}"
    ]
    top_level = ", ".join(package for package in project_packages() if "." not in package)
    assert results[1].stdout.splitlines() == [
        "dry run: DataflowRunner job graph built; would stage requirements.txt, pickled_main_session, "
        f"workflow.tar.gz (noisy_student-0.1.0.tar.gz: {top_level}), submission_environment_dependencies.txt; "
        f"workers start from {BEAM_CONTAINER}; nothing submitted, nothing written to {output_dir}"
    ]
    assert "workers start from us-central1-docker.pkg.dev/my-project/" in results[2].stdout

    # A package that does not build is one line, exit 2, like the refusals below.
    assert results[3].returncode == 2
    assert results[3].stderr.strip().splitlines()[-1] == (
        "error: DataflowRunner could not launch the job: Failed to build package from "
        f"'{broken / 'pyproject.toml'}' using . 'python -m build'. Please ensure that the 'build' module is "
        "installed and your project's build configuration is valid."
    )
    assert results[3].stdout == ""
    # Refused before anything is loaded.
    assert results[4].returncode == 2
    assert results[4].stderr.strip().splitlines()[-1] == (
        "error: Dataflow workers need this project's code: pass --setup_file=./pyproject.toml (Beam builds the "
        "package and installs it on every worker) or --sdk_container_image=IMAGE with it installed"
    )
    assert results[5].returncode == 2
    assert results[5].stderr.strip().splitlines()[-1] == (
        "error: --dry_run is DataflowRunner's: it builds and stages the job without submitting it; "
        "FnApiRunner ignores it and would run the whole job"
    )

    # Nothing written: no output, no temporary sibling, no staging leftovers.
    assert not (tmp_path / "out").exists()
    assert list(scratch.iterdir()) == []


@pytest.mark.slow  # builds the sdist and the wheel, then a CLI process
def test_the_wheel_installs_and_runs_outside_the_repository(tmp_path):
    dist, target = tmp_path / "dist", tmp_path / "site"
    # The sdist as Beam's --setup_file builds it, and a wheel built from that sdist.
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    (sdist,), (wheel,) = dist.glob("*.tar.gz"), dist.glob("*.whl")
    with tarfile.open(sdist) as archive:
        shipped = {member.name.split("/", 1)[1] for member in archive.getmembers() if "/" in member.name}
    assert set(project_modules()) <= shipped
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", f"--target={target}", str(wheel)],
        check=True,
        capture_output=True,
    )
    installed = sorted(".".join(init.parent.relative_to(target).parts) for init in target.rglob("__init__.py"))
    assert installed == project_packages()

    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"} | {
        "PYTHONPATH": str(target),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    summary = subprocess.run(
        [sys.executable, "-m", "efficientnet.model.summary", "--model=efficientnet-b0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert summary.returncode == 0, summary.stderr
    assert re.search(r"^parameters +5,288,548 trainable", summary.stdout, flags=re.MULTILINE)
    # The installed copy, not one the venv may also hold, with its package data.
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u; print(u.find_spec('pseudolabel.run').origin); "
            "from efficientnet.data.digits import load_digits; print(len(load_digits()[1]))",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.split() == [str(target / "pseudolabel" / "run.py"), "1797"]
