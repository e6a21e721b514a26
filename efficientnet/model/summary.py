"""Print what compound scaling made of a model size.

  python -m efficientnet.model.summary --model=efficientnet-b3
  python -m efficientnet.model.summary --model=efficientnet-b0 --width=0.25 --depth=0.25 \
      --resolution=32 --small_images --num_classes=10

Shows width, depth, resolution, the scaled filters and repeats per stage, the
parameter counts and the multiply-adds of the model as built.
"""

from __future__ import annotations

import itertools

import numpy as np
from absl import flags

from efficientnet.model import scaling
from efficientnet.model.flops import count_multiply_adds
from efficientnet.model.network import build_from_config
from efficientnet.util import cli

_MODEL = flags.DEFINE_string("model", "efficientnet-b0", f"One of: {', '.join(scaling.MODEL_SIZES.names())}.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 1000, "Classifier size.")
_WIDTH = flags.DEFINE_float("width", None, "Override the width multiplier.")
_DEPTH = flags.DEFINE_float("depth", None, "Override the depth multiplier.")
_RESOLUTION = flags.DEFINE_integer("resolution", None, "Override the input resolution.")
_SMALL_IMAGES = flags.DEFINE_boolean("small_images", None, "Unstrided stem and stage 2 for <=64 px inputs.")


def summarize(config: scaling.ModelConfig) -> str:
    """Builds the model described by `config` and returns a printable table."""
    model = build_from_config(config)
    multiply_adds = count_multiply_adds(model)
    trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
    lines = [
        f"model            {config.name}",
        f"width            {config.width}",
        f"depth            {config.depth}",
        f"resolution       {config.resolution}",
        f"dropout_rate     {config.dropout_rate}",
        f"stem filters     {scaling.stem_filters(config)} (stride {scaling.stem_strides(config)})",
        "",
        "stage  repeats  kernel  stride  expand  filters",
    ]
    blocks = scaling.block_specs(config)
    for stage, group in itertools.groupby(blocks, key=lambda block: block.stage):
        group = list(group)
        first = group[0]
        lines.append(
            f"{stage:>5}  {len(group):>7}  {first.kernel_size:>6}  {first.strides:>6}  "
            f"{first.expand_ratio:>6}  {first.input_filters}->{first.output_filters}"
        )
    lines += [
        "",
        f"head filters     {scaling.head_filters(config)}",
        f"blocks           {len(blocks)}",
        f"parameters       {trainable:,} trainable, {model.count_params():,} with BN statistics",
        f"multiply-adds    {multiply_adds / 1e9:.3f} B ({multiply_adds:,})",
    ]
    return "\n".join(lines)


def main(argv):
    del argv
    config = scaling.model_config(
        _MODEL.value,
        _NUM_CLASSES.value,
        width=_WIDTH.value,
        depth=_DEPTH.value,
        resolution=_RESOLUTION.value,
        small_images=_SMALL_IMAGES.value,
    )
    print(summarize(config))


if __name__ == "__main__":
    cli.run(main)
