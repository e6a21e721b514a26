"""Convert a reference TPU checkpoint (the released Noisy Student weights) into one of our exports.

  python -m efficientnet.model.convert_checkpoint \
      --checkpoint=noisy_student_efficientnet-b0 --output=exports/noisy-student-b0
  python -m efficientnet.model.convert_checkpoint --checkpoint=efficientnet-l2_475 --output=exports/ns-l2-475

`--checkpoint` is a checkpoint prefix or a directory holding one (local or gs://), or the
name of a released checkpoint (`efficientnet-b0` … `efficientnet-b7`, `efficientnet-l2`,
`efficientnet-l2_475`), which is downloaded into `--cache_dir` on first use. The size is the
checkpoint's own (its `efficientnet-bN/` variable scope); the resolution is the released one
for a released checkpoint, else the size's (docs/efficientnet.md#sizes). The export
(`model.keras` + `model.json`) is what evaluation, labeling and the robustness benchmarks read,
like any export of a training run; see docs/efficientnet.md#released-checkpoints.
"""

from __future__ import annotations

from absl import flags

from efficientnet.model import export, official_checkpoint, scaling
from efficientnet.model.network import build_from_config
from efficientnet.util import cli

WEIGHTS = {"ema": True, "raw": False}  # --weights → use_ema

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Checkpoint prefix or directory (local or gs://), or a released checkpoint's name."
)
_OUTPUT = flags.DEFINE_string("output", None, "Export directory to write (model.keras and model.json).")
_MODEL = flags.DEFINE_string("model", None, "Model size; default: the checkpoint's own. Another size is refused.")
_RESOLUTION = flags.DEFINE_integer("resolution", None, "Input resolution; default: the released one, else the size's.")
_WEIGHTS = flags.DEFINE_enum(
    "weights", "ema", list(WEIGHTS), "ema: the averaged weights the reference evaluates with; raw: the trained ones."
)
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Where released checkpoints are unpacked (default ~/.cache/…).")
_WIDTH = flags.DEFINE_float("width", None, "Override the width multiplier (tiny models).")
_DEPTH = flags.DEFINE_float("depth", None, "Override the depth multiplier (tiny models).")
_SMALL_IMAGES = flags.DEFINE_boolean("small_images", None, "Unstrided stem and stage 2 for <=64 px inputs.")


def convert(
    checkpoint: str,
    output: str,
    *,
    model: str | None = None,
    resolution: int | None = None,
    use_ema: bool = True,
    cache_dir: str | None = None,
    **overrides,
) -> str:
    """Writes the export of a reference checkpoint to `output`; returns its `model.json` path.

    The number of classes is the checkpoint's classifier's; the metadata records where the
    weights came from (`converted_from`) and, for a released checkpoint, its published top-1.

    Raises:
      ValueError: see `official_checkpoint.load_official_checkpoint`; also a `model` other
        than the checkpoint's size, naming both.
    """
    prefix = official_checkpoint.resolve_checkpoint(checkpoint, cache_dir)
    shapes = official_checkpoint.read_variable_shapes(prefix)
    scope = official_checkpoint.checkpoint_scope(shapes, prefix)
    released_name = official_checkpoint.released_name_of(checkpoint)
    released = official_checkpoint.RELEASED.get(released_name) if released_name else None
    if released and released.model == scope and resolution is None:
        resolution = released.resolution
    num_classes = official_checkpoint.checkpoint_num_classes(shapes, scope, prefix)
    config = scaling.model_config(model or scope, num_classes, resolution=resolution, **overrides)
    network = build_from_config(config, policy="float32")
    official_checkpoint.load_official_checkpoint(network, config, prefix, use_ema=use_ema, include_classifier=True)
    source = {"checkpoint": prefix, "weights": "ema" if use_ema else "raw", "format": "tensorflow/tpu EfficientNet"}
    extra = {"converted_from": source}
    if released:
        extra["published_top1"] = released.top1
    return export.save_export(output, network, config, class_names=None, extra=extra)


def main(argv):
    del argv
    for flag in (_CHECKPOINT, _OUTPUT):
        if not flag.value:
            raise ValueError(f"--{flag.name} is required")
    path = convert(
        _CHECKPOINT.value,
        _OUTPUT.value,
        model=_MODEL.value,
        resolution=_RESOLUTION.value,
        use_ema=WEIGHTS[_WEIGHTS.value],
        cache_dir=_CACHE_DIR.value,
        width=_WIDTH.value,
        depth=_DEPTH.value,
        small_images=_SMALL_IMAGES.value,
    )
    metadata = export.load_metadata(_OUTPUT.value)
    config = export.model_config_of(metadata)
    print(
        f"wrote {path}: {config.name} at {config.resolution} px, {config.num_classes} classes, "
        f"{_WEIGHTS.value} weights of {metadata['converted_from']['checkpoint']}"
    )


if __name__ == "__main__":
    cli.run(main)
