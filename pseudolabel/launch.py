"""Where the labeling job runs, and what the workers of a remote runner get.

Without `--runner` the job runs on Beam's FnApiRunner in this process
(`LOCAL_PIPELINE_ARGS`; Beam's DirectRunner would first try to download the
Prism runner, docs/platform.md#apache-beam). Those defaults go first on the
command line Beam parses, so a runner flag of the user's own, such as
`--direct_running_mode=multi_processing --direct_num_workers=2` (SDK workers
in separate processes over the Fn API, the path Dataflow, Flink and Spark
take), wins over them.

The workers of a remote runner unpickle the job's functions, so they must
import this project: on Dataflow, `--setup_file=./pyproject.toml` makes Beam
build the project's sdist and pip-install it on every worker, and
`--sdk_container_image` names an image that has it installed. A Dataflow job
with neither would fail on its workers minutes after submission; it is
refused before anything is loaded.

Beam stages those files inside `Pipeline.run()`, in this process, before it
submits anything. A missing file or an sdist that does not build is a
RuntimeError there that describes bad input, so it is re-raised as a
ValueError (one line from the CLI). Beam builds the files in a
`tempfile.mkdtemp()` that it never removes; here that is a scratch directory,
removed once `run()` has returned, by when everything has been uploaded.

`--dry_run=True` is DataflowRunner's own switch: `run()` translates the job
graph and stages the files locally, then returns without submitting.
`DryRun` says what would have been shipped. Other runners ignore the flag and
would run the whole job, so there it is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import tarfile
import tempfile

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    TestOptions,
    WorkerOptions,
)
from apache_beam.portability import common_urns
from apache_beam.portability.api import beam_runner_api_pb2
from apache_beam.runners import DataflowRunner, create_runner

LOCAL_PIPELINE_ARGS = ("--runner=FnApiRunner", "--direct_running_mode=in_memory")
SETUP_PACKAGE = "workflow.tar.gz"  # what Beam stages the --setup_file's sdist as


def new_pipeline(pipeline_args: list[str] | None) -> beam.Pipeline:
    """A pipeline for Beam's flags; without --runner, the local default.

    Raises ValueError, before Beam validates any option against the cloud,
    for a Dataflow job that ships no copy of the project and for `--dry_run`
    on a runner that would ignore it.
    """
    args = list(pipeline_args or [])
    if not any(arg == "--runner" or arg.startswith("--runner=") for arg in args):
        args = [*LOCAL_PIPELINE_ARGS, *args]
    options = PipelineOptions(args)
    runner = create_runner(options.view_as(StandardOptions).runner)  # the runner beam.Pipeline would create
    on_dataflow = isinstance(runner, DataflowRunner)
    if options.view_as(TestOptions).dry_run and not on_dataflow:
        raise ValueError(
            f"--dry_run is DataflowRunner's: it builds and stages the job without submitting it; "
            f"{type(runner).__name__} ignores it and would run the whole job"
        )
    setup, worker = options.view_as(SetupOptions), options.view_as(WorkerOptions)
    if on_dataflow and not (setup.setup_file or setup.extra_packages or worker.sdk_container_image):
        raise ValueError(
            "Dataflow workers need this project's code: pass --setup_file=./pyproject.toml (Beam builds the "
            "package and installs it on every worker) or --sdk_container_image=IMAGE with it installed"
        )
    return beam.Pipeline(runner=runner, options=options)


def labels_in_this_process(pipeline: beam.Pipeline) -> bool:
    """Whether one process, this one, runs every element: FnApiRunner in memory."""
    return (
        _runner_name(pipeline) == "FnApiRunner"
        and pipeline.options.view_as(DirectOptions).direct_running_mode == "in_memory"
    )


def _beam_option_parser():
    """Beam's own option parser, as `PipelineOptions.get_all_options` builds it from every
    registered options class (its parser class is private in Beam 2.77)."""
    from apache_beam.options.pipeline_options import _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False, exit_on_error=False)
    for options_class in {str(cls): cls for cls in PipelineOptions.__subclasses__()}.values():
        options_class._add_argparse_args(parser)
    return parser


def unknown_to_beam(pipeline_args: list[str]) -> list[str]:
    """The flags in `pipeline_args` that no Beam pipeline option recognises.

    Beam itself only logs such an argument ("Unparseable argument", among the
    job's progress lines) and runs without it, so a misspelt flag of ours
    that reached Beam would be dropped silently.
    """
    try:
        _, unknown = _beam_option_parser().parse_known_args(list(pipeline_args))
    except argparse.ArgumentError as error:  # a Beam option without its value, or with a bad one
        raise ValueError(f"Beam's pipeline options refuse the command line: {error}") from None
    return [argument for argument in unknown if argument.startswith("-")]


def beam_option_names() -> list[str]:
    """Every Beam pipeline option's name, without dashes (`runner`, `temp_location`, …)."""
    return sorted(
        option.lstrip("-")
        for action in _beam_option_parser()._actions
        for option in action.option_strings
        if option.startswith("--")
    )


def is_dry_run(pipeline_args: list[str] | None) -> bool:
    """Whether Beam's flags ask for a dry run (tested for truth, as Beam does)."""
    return bool(PipelineOptions(list(pipeline_args or [])).view_as(TestOptions).dry_run)


def run(pipeline: beam.Pipeline) -> beam.runners.runner.PipelineResult:
    """`pipeline.run()`; on a remote runner with launch failures as ValueError."""
    if _runner_name(pipeline) in StandardOptions.LOCAL_RUNNERS:
        return pipeline.run()  # runs the job itself: its errors are the job's
    with _launching(pipeline):
        return pipeline.run()


@dataclasses.dataclass(frozen=True)
class DryRun:
    """What a dry run built: the names the files would be staged under, the
    project packages inside the staged sdist, the workers' container images."""

    runner: str
    staged: tuple[str, ...]
    sdist: str | None  # the file Beam built from --setup_file
    packages: tuple[str, ...]  # its top-level packages
    container_images: tuple[str, ...]
    output_dir: str

    def line(self) -> str:
        staged = ", ".join(
            f"{name} ({self.sdist}: {', '.join(self.packages)})" if name == SETUP_PACKAGE else name
            for name in self.staged
        )
        return (
            f"dry run: {self.runner} job graph built; would stage {staged or 'nothing'}; "
            f"workers start from {', '.join(self.container_images)}; "
            f"nothing submitted, nothing written to {self.output_dir}"
        )


def dry_run(pipeline: beam.Pipeline, output_dir: str) -> DryRun:
    """Builds and stages the job without submitting it (`--dry_run=True`)."""
    with _launching(pipeline):
        job = pipeline.run().job  # DataflowRunner's dry run returns the job it would have submitted
        staged, sdist, packages, images = [], None, (), []
        for environment in job.proto_pipeline.components.environments.values():
            if environment.urn == common_urns.environments.DOCKER.urn:
                images.append(beam_runner_api_pb2.DockerPayload.FromString(environment.payload).container_image)
            for artifact in environment.dependencies:
                name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(artifact.role_payload).staged_name
                staged.append(name)
                if name == SETUP_PACKAGE:
                    path = beam_runner_api_pb2.ArtifactFilePayload.FromString(artifact.type_payload).path
                    sdist, packages = os.path.basename(path), _packages_in_sdist(path)
    return DryRun(
        runner=_runner_name(pipeline),
        staged=tuple(staged),
        sdist=sdist,
        packages=packages,
        container_images=tuple(dict.fromkeys(images)),
        output_dir=output_dir,
    )


def _packages_in_sdist(path: str) -> tuple[str, ...]:
    """The top-level packages in an sdist: `name-version/PACKAGE/__init__.py`."""
    with tarfile.open(path) as sdist:
        paths = [member.name.split("/") for member in sdist.getmembers()]
    return tuple(sorted(parts[1] for parts in paths if len(parts) == 3 and parts[2] == "__init__.py"))


@contextlib.contextmanager
def _launching(pipeline: beam.Pipeline):
    """Beam's staging files in a scratch directory; its launch failures as ValueError."""
    with tempfile.TemporaryDirectory(prefix="pseudolabel-staging-") as scratch:
        previous, tempfile.tempdir = tempfile.tempdir, scratch
        try:
            yield
        except RuntimeError as error:
            raise ValueError(f"{_runner_name(pipeline)} could not launch the job: {error}") from error
        finally:
            tempfile.tempdir = previous


def _runner_name(pipeline: beam.Pipeline) -> str:
    return type(pipeline.runner).__name__
