"""Scaling arithmetic checked against hand-computed values (docs/efficientnet.md)."""

import json

import pytest

from efficientnet.model import scaling
from efficientnet.util.registry import UnknownNameError


@pytest.mark.parametrize(
    "filters, width, expected",
    [
        (32, 1.0, 32),
        (32, 1.1, 32),  # 35.2 -> int(39.2)//8*8 = 32, and 32 >= 0.9*35.2
        (40, 1.1, 48),  # 44.0 -> int(48.0)//8*8 = 48
        (1280, 1.2, 1536),
        (16, 4.3, 72),  # 68.8 -> int(72.8)//8*8 = 72
        (32, 0.1, 8),  # never below the divisor
        (119, 0.1, 16),  # 11.9 rounds to 8 < 0.9*11.9, so 8 more
        (320, 2.0, 640),
    ],
)
def test_round_filters(filters, width, expected):
    assert scaling.round_filters(filters, width) == expected


@pytest.mark.parametrize(
    "repeats, depth, expected",
    [(1, 1.0, 1), (3, 1.1, 4), (2, 1.2, 3), (4, 3.1, 13), (4, 5.3, 22), (1, 0.25, 1), (4, 0.25, 1)],
)
def test_round_repeats(repeats, depth, expected):
    assert scaling.round_repeats(repeats, depth) == expected


def test_size_table_matches_reference():
    expected = {
        "efficientnet-b0": (1.0, 1.0, 224, 0.2),
        "efficientnet-b1": (1.0, 1.1, 240, 0.2),
        "efficientnet-b2": (1.1, 1.2, 260, 0.3),
        "efficientnet-b3": (1.2, 1.4, 300, 0.3),
        "efficientnet-b4": (1.4, 1.8, 380, 0.4),
        "efficientnet-b5": (1.6, 2.2, 456, 0.4),
        "efficientnet-b6": (1.8, 2.6, 528, 0.5),
        "efficientnet-b7": (2.0, 3.1, 600, 0.5),
        "efficientnet-b8": (2.2, 3.6, 672, 0.5),
        "efficientnet-l2": (4.3, 5.3, 800, 0.5),
    }
    assert scaling.MODEL_SIZES.names() == sorted(expected)
    for name, (width, depth, resolution, dropout) in expected.items():
        assert scaling.MODEL_SIZES.get(name) == scaling.ModelSize(width, depth, resolution, dropout)


def test_compound_coefficients_double_flops_per_step():
    # alpha * beta^2 * gamma^2 ~= 2 (Tan & Le 2019, eq. 3).
    product = scaling.ALPHA_DEPTH * scaling.BETA_WIDTH**2 * scaling.GAMMA_RESOLUTION**2
    assert product == pytest.approx(1.92, abs=0.01)


def test_b0_blocks():
    config = scaling.model_config("efficientnet-b0")
    blocks = scaling.block_specs(config)
    assert [b.name for b in blocks] == [
        "block1a", "block2a", "block2b", "block3a", "block3b", "block4a", "block4b", "block4c",
        "block5a", "block5b", "block5c", "block6a", "block6b", "block6c", "block6d", "block7a",
    ]  # fmt: skip
    assert [b.strides for b in blocks] == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert [(b.input_filters, b.output_filters) for b in blocks[:3]] == [(32, 16), (16, 24), (24, 24)]
    # Squeeze width is a quarter of the block *input* channels.
    assert [b.se_filters for b in blocks[:3]] == [8, 4, 6]
    assert blocks[1].expanded_filters == 96
    # Stochastic depth grows linearly: block i of 16 has 0.2 * i / 16.
    assert [b.drop_connect_rate for b in blocks] == pytest.approx([0.2 * i / 16 for i in range(16)])
    assert [b.has_residual for b in blocks[:3]] == [False, False, True]
    assert scaling.stem_filters(config) == 32 and scaling.head_filters(config) == 1280


def test_b3_stage_filters_and_repeats():
    config = scaling.model_config("efficientnet-b3")
    blocks = scaling.block_specs(config)
    first_of_stage = {}
    for block in blocks:
        first_of_stage.setdefault(block.stage, block)
    assert [first_of_stage[s].output_filters for s in range(1, 8)] == [24, 32, 48, 96, 136, 232, 384]
    assert [sum(b.stage == s for b in blocks) for s in range(1, 8)] == [2, 3, 3, 5, 5, 6, 2]
    assert scaling.stem_filters(config) == 40 and scaling.head_filters(config) == 1536


def test_l2_block_letters_go_past_z():
    blocks = scaling.block_specs(scaling.model_config("efficientnet-l2"))
    assert sum(b.stage == 6 for b in blocks) == 22
    assert [b.name for b in blocks if b.stage == 6][-1] == "block6v"
    assert scaling._block_letter(25) == "z" and scaling._block_letter(26) == "aa"


def test_small_images_unstrides_stem_and_stage_two():
    config = scaling.model_config("efficientnet-b0", small_images=True)
    assert scaling.stem_strides(config) == 1
    strides = {b.stage: b.strides for b in scaling.block_specs(config) if b.name.endswith("a")}
    assert strides == {1: 1, 2: 1, 3: 2, 4: 2, 5: 1, 6: 2, 7: 1}


def test_overrides_and_none_means_default():
    config = scaling.model_config("efficientnet-b2", num_classes=10, width=0.5, resolution=None)
    assert (config.width, config.depth, config.resolution, config.num_classes) == (0.5, 1.2, 260, 10)
    assert scaling.ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_bad_names_and_overrides_fail_clearly():
    with pytest.raises(UnknownNameError, match="efficientnet-b9.*valid names: efficientnet-b0"):
        scaling.model_config("efficientnet-b9")
    with pytest.raises(ValueError, match=r"unknown model override\(s\) \['widht'\]"):
        scaling.model_config("efficientnet-b0", widht=0.5)
    with pytest.raises(ValueError, match="invalid drop_connect_rate=1.0"):
        scaling.model_config("efficientnet-b0", drop_connect_rate=1.0)
    with pytest.raises(ValueError, match="invalid num_classes=0"):
        scaling.model_config("efficientnet-b0", num_classes=0)
