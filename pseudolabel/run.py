"""Label an unlabeled corpus with a teacher export: Beam, local or on Dataflow.

  python -m pseudolabel.run --input=digits --split=unlabeled \
      --teacher=runs/digits/round0/export --output_dir=runs/digits/round0/pseudo

  python -m pseudolabel.run --input='tfrecord:gs://bucket/unlabeled/train-*' \
      --teacher=gs://bucket/b7/export --output_dir=gs://bucket/pseudo/b7 \
      --images_per_class=130000 --batch_size=256 \
      --runner=DataflowRunner --project=PROJECT --region=us-central1 \
      --temp_location=gs://bucket/tmp --sdk_container_image=IMAGE --machine_type=g2-standard-8 \
      --dataflow_service_options='worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver'

Flags, one per `LabelingConfig` setting, are parsed by absl; every other `--name=value` goes to
Beam's PipelineOptions (runner, project, region, workers, containers…).
Without `--runner` the job runs in this process on Beam's FnApiRunner.
Writes `OUTPUT_DIR/pseudo-SSSSS-of-NNNNN.tfrecord`, `stats.json`,
`config.json` and `failures.jsonl`, all at once when the job succeeded. An input
that yields no image fails before the teacher is loaded (status 2); a job
whose threshold keeps no image writes its stats but exits with an error
(status 2): a student cannot train on nothing.
"""

from __future__ import annotations

import functools
import sys

from absl import flags

from efficientnet.util import cli, settings
from pseudolabel import launch, outputs
from pseudolabel.pipeline import LabelingConfig, dry_run_labeling, run_labeling

FLAGS = flags.FLAGS
settings.define_flags(LabelingConfig)


def split_argv(argv: list[str], known_flags) -> tuple[list[str], list[str]]:
    """Splits a command line into (program + our flags, Beam's flags).

    Our flags are those defined in `known_flags` (an absl FlagValues), in any
    absl spelling (`--name=value`, `--name value`, `--[no]bool`); everything
    after a bare `--` and every other flag, with its value, goes to Beam.
    """
    ours, beam_args = [argv[0]], []
    index = 1
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            beam_args.extend(argv[index + 1 :])
            break
        name = arg.lstrip("-").split("=", 1)[0]
        takes_value = "=" not in arg and arg.startswith("-")
        if name in known_flags or (name.startswith("no") and name[2:] in known_flags):
            flag = known_flags[name if name in known_flags else name[2:]]
            takes_value = takes_value and not flag.boolean
            target = ours
        elif arg.startswith("-"):
            takes_value = takes_value and index + 1 < len(argv) and not argv[index + 1].startswith("-")
            target = beam_args
        else:
            takes_value, target = False, ours  # a stray positional: main() refuses it
        target.append(arg)
        if takes_value and index + 1 < len(argv):
            target.append(argv[index + 1])
            index += 1
        index += 1
    return ours, beam_args


def main(argv, pipeline_args: list[str]):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; flags are written --name=value")
    check_beam_args(pipeline_args)
    config = settings.from_flags(LabelingConfig)
    if launch.is_dry_run(pipeline_args):
        print(dry_run_labeling(config, pipeline_args).line())
        return
    stats = run_labeling(config, pipeline_args)
    if stats["num_images"] == 0:
        raise ValueError(
            f"no image of --input={config.input} could be decoded ({stats['num_failures']} failed; "
            f"{outputs.failures_path(config.output_dir)} names them)"
        )
    if stats["num_records"] == 0:
        histogram = stats["confidence_histogram"]
        highest = max(
            (edge for edge, count in zip(histogram["bin_edges"][:-1], histogram["counts"], strict=True) if count),
            default=None,
        )
        raise ValueError(
            f"no image reached --confidence_threshold={stats['confidence_threshold']} "
            f"(the most confident ones are in the bin starting at {highest}); {config.output_dir} holds no records, "
            "only its stats.json: lower the threshold"
        )
    print(
        f"labeled {stats['num_images']} images ({stats['num_failures']} undecodable): kept {stats['num_kept']} "
        f"at confidence >= {stats['confidence_threshold']}, wrote {stats['num_records']} records "
        f"(K={stats['images_per_class']}) to {config.output_dir}"
    )


def check_beam_args(beam_args: list[str]) -> None:
    """Refuses (ValueError) an argument that neither this job nor Beam knows.

    Named with the nearest of this job's flags and Beam's options, so that
    `--confidence_treshold` is not handed to Beam, which would drop it.
    """
    unknown = launch.unknown_to_beam(beam_args)
    if unknown:
        name = unknown[0].lstrip("-").split("=", 1)[0]
        raise ValueError(cli.unknown_flag(name, cli.own_flags() + launch.beam_option_names()))


if __name__ == "__main__":
    ours, beam_args = split_argv(sys.argv, FLAGS)
    sys.argv = ours  # absl refuses flags it does not know; Beam's go straight to main
    cli.run(functools.partial(main, pipeline_args=beam_args))
