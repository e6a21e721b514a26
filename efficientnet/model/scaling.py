"""EfficientNet compound scaling: the architecture as data plus pure functions.

Every EfficientNet size is the B0 stage table (Tan & Le 2019, Table 1) scaled
by a (width, depth, resolution, dropout) row (docs/efficientnet.md). The
rows come from the compound rule depth = 1.2^φ, width = 1.1^φ,
resolution = 1.15^φ, rounded by hand by the authors; we store the published
rows rather than recomputing them from φ so that results and weights from the
literature carry over exactly.

Nothing in this module touches Keras: it turns a model name and overrides into
a `ModelConfig` and a flat list of `BlockSpec`s that `efficientnet.model.network`
turns into layers, so the arithmetic is testable by hand.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from efficientnet.util.registry import Registry

# Compound-scaling coefficients found by grid search at φ=1 on B0
# (Tan & Le 2019, §3.3). The size table below is what they produce after the
# authors' rounding; the constants are kept for documentation and `summary`.
ALPHA_DEPTH = 1.2
BETA_WIDTH = 1.1
GAMMA_RESOLUTION = 1.15


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """One row of the B0 stage table (docs/efficientnet.md#b0-stages)."""

    repeats: int
    kernel_size: int
    strides: int
    expand_ratio: int
    input_filters: int
    output_filters: int
    se_ratio: float = 0.25


# EfficientNet-B0 stages (Tan & Le 2019, Table 1; docs/efficientnet.md#b0-stages).
B0_STAGES: tuple[StageSpec, ...] = (
    StageSpec(repeats=1, kernel_size=3, strides=1, expand_ratio=1, input_filters=32, output_filters=16),
    StageSpec(repeats=2, kernel_size=3, strides=2, expand_ratio=6, input_filters=16, output_filters=24),
    StageSpec(repeats=2, kernel_size=5, strides=2, expand_ratio=6, input_filters=24, output_filters=40),
    StageSpec(repeats=3, kernel_size=3, strides=2, expand_ratio=6, input_filters=40, output_filters=80),
    StageSpec(repeats=3, kernel_size=5, strides=1, expand_ratio=6, input_filters=80, output_filters=112),
    StageSpec(repeats=4, kernel_size=5, strides=2, expand_ratio=6, input_filters=112, output_filters=192),
    StageSpec(repeats=1, kernel_size=3, strides=1, expand_ratio=6, input_filters=192, output_filters=320),
)
B0_STEM_FILTERS = 32
B0_HEAD_FILTERS = 1280
B0_STEM_STRIDES = 2

# With `small_images`, these stages lose their stride as the stem does, so a
# 32 px input ends at a 4x4 feature map (total stride 8) instead of 1x1.
SMALL_IMAGE_UNSTRIDED_STAGES = (1,)


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """Per-size multipliers and defaults (the table in docs/efficientnet.md#sizes)."""

    width: float
    depth: float
    resolution: int
    dropout_rate: float


MODEL_SIZES: Registry[ModelSize] = Registry("model")
for _name, _size in {
    "efficientnet-b0": ModelSize(width=1.0, depth=1.0, resolution=224, dropout_rate=0.2),
    "efficientnet-b1": ModelSize(width=1.0, depth=1.1, resolution=240, dropout_rate=0.2),
    "efficientnet-b2": ModelSize(width=1.1, depth=1.2, resolution=260, dropout_rate=0.3),
    "efficientnet-b3": ModelSize(width=1.2, depth=1.4, resolution=300, dropout_rate=0.3),
    "efficientnet-b4": ModelSize(width=1.4, depth=1.8, resolution=380, dropout_rate=0.4),
    "efficientnet-b5": ModelSize(width=1.6, depth=2.2, resolution=456, dropout_rate=0.4),
    "efficientnet-b6": ModelSize(width=1.8, depth=2.6, resolution=528, dropout_rate=0.5),
    "efficientnet-b7": ModelSize(width=2.0, depth=3.1, resolution=600, dropout_rate=0.5),
    "efficientnet-b8": ModelSize(width=2.2, depth=3.6, resolution=672, dropout_rate=0.5),
    # L2 is evaluated at 800 px; the Noisy Student paper trains it at 475 px.
    "efficientnet-l2": ModelSize(width=4.3, depth=5.3, resolution=800, dropout_rate=0.5),
}.items():
    MODEL_SIZES.add(_name, _size)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Scales a channel count by `width`, rounded to a multiple of `divisor`.

    Rounds to the nearest multiple (never below `divisor`) and adds one more
    `divisor` when rounding down lost more than 10% (docs/efficientnet.md#rounding): hardware
    prefers multiples of 8, and the 10% guard keeps narrow layers from
    collapsing.
    """
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scales a stage's block count by `depth`, rounding up (docs/efficientnet.md#rounding)."""
    return int(math.ceil(depth * repeats))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build one EfficientNet; JSON-serialisable.

    Built by `model_config(name, **overrides)`; overrides exist so tiny models
    (e.g. width 0.25, depth 0.25, 32 px, `small_images=True`) can be trained
    on a CPU in tests and demos with the same code as the published sizes.
    """

    name: str
    num_classes: int
    width: float
    depth: float
    resolution: int
    dropout_rate: float
    # Stochastic depth: block i of N drops its branch with rate
    # drop_connect_rate·i/N, so the last one comes close to this rate
    # (0.1875 in B0) and the first never drops (docs/efficientnet.md#stochastic-depth).
    drop_connect_rate: float = 0.2
    small_images: bool = False
    batch_norm_momentum: float = 0.99
    batch_norm_epsilon: float = 1e-3
    # Batch statistics over the global batch rather than each replica's slice
    # (docs/training.md#across-replicas); a training setting that changes
    # nothing with one replica or at inference. Set by `--sync_batch_norm`.
    sync_batch_norm: bool = False
    depth_divisor: int = 8

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        return cls(**values)


OVERRIDABLE = ("width", "depth", "resolution", "dropout_rate", "drop_connect_rate", "small_images")


def model_config(name: str, num_classes: int = 1000, **overrides: Any) -> ModelConfig:
    """Resolves a registered model name plus overrides into a `ModelConfig`.

    Raises:
      UnknownNameError: `name` is not registered (lists the valid names).
      ValueError: an override is unknown or out of range (names the override).
    """
    size = MODEL_SIZES.get(name)
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"unknown model override(s) {unknown}; valid: {list(OVERRIDABLE)}")
    values = dataclasses.asdict(size) | {"name": name, "num_classes": num_classes}
    values |= {key: value for key, value in overrides.items() if value is not None}
    config = ModelConfig(**values)
    _validate(config)
    return config


def _validate(config: ModelConfig) -> None:
    checks = {
        "num_classes": config.num_classes >= 1,
        "width": config.width > 0,
        "depth": config.depth > 0,
        "resolution": config.resolution >= 8,
        "dropout_rate": 0 <= config.dropout_rate < 1,
        "drop_connect_rate": 0 <= config.drop_connect_rate < 1,
    }
    for field, ok in checks.items():
        if not ok:
            raise ValueError(f"invalid {field}={getattr(config, field)!r} for model {config.name!r}")


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One concrete MBConv block after scaling; `stage` counts from 1."""

    name: str
    stage: int
    kernel_size: int
    strides: int
    expand_ratio: int
    input_filters: int
    output_filters: int
    se_filters: int
    drop_connect_rate: float

    @property
    def expanded_filters(self) -> int:
        return self.input_filters * self.expand_ratio

    @property
    def has_residual(self) -> bool:
        return self.strides == 1 and self.input_filters == self.output_filters


def stem_filters(config: ModelConfig) -> int:
    return round_filters(B0_STEM_FILTERS, config.width, config.depth_divisor)


def stem_strides(config: ModelConfig) -> int:
    return 1 if config.small_images else B0_STEM_STRIDES


def head_filters(config: ModelConfig) -> int:
    return round_filters(B0_HEAD_FILTERS, config.width, config.depth_divisor)


def block_specs(config: ModelConfig) -> list[BlockSpec]:
    """Expands the scaled stage table into one `BlockSpec` per block.

    The first block of a stage carries the stride and the channel change; its
    repeats have stride 1 and equal input/output channels. Block i of N
    (0-based, over the whole network) gets stochastic-depth rate
    drop_connect_rate·i/N (docs/efficientnet.md#stochastic-depth). The squeeze width is a quarter of
    the *block input* channels, not of the expanded ones, as in the reference.
    """
    stages = []
    for stage_index, stage in enumerate(B0_STAGES):
        strides = 1 if config.small_images and stage_index in SMALL_IMAGE_UNSTRIDED_STAGES else stage.strides
        stages.append(
            (
                stage_index,
                stage,
                strides,
                round_filters(stage.input_filters, config.width, config.depth_divisor),
                round_filters(stage.output_filters, config.width, config.depth_divisor),
                round_repeats(stage.repeats, config.depth),
            )
        )
    total_blocks = sum(repeats for *_, repeats in stages)
    blocks = []
    for stage_index, stage, strides, input_filters, output_filters, repeats in stages:
        for repeat in range(repeats):
            block_input = input_filters if repeat == 0 else output_filters
            blocks.append(
                BlockSpec(
                    name=f"block{stage_index + 1}{_block_letter(repeat)}",
                    stage=stage_index + 1,
                    kernel_size=stage.kernel_size,
                    strides=strides if repeat == 0 else 1,
                    expand_ratio=stage.expand_ratio,
                    input_filters=block_input,
                    output_filters=output_filters,
                    se_filters=max(1, int(block_input * stage.se_ratio)),
                    drop_connect_rate=config.drop_connect_rate * len(blocks) / total_blocks,
                )
            )
    return blocks


def _block_letter(index: int) -> str:
    """a, b, …, z, then aa, ab, … (L2 has up to 22 blocks per stage)."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("a") + remainder) + letters
    return letters
