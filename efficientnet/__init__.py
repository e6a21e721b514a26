"""EfficientNet B0–B8 and L2 for the Noisy Student pipeline.

Public entry points: `build_model`, `model_config`, `MODEL_SIZES`,
`round_filters`, `round_repeats`, `load_keras_applications_weights`,
`count_multiply_adds`.
"""

from efficientnet.flops import count_multiply_adds
from efficientnet.keras_weights import load_keras_applications_weights
from efficientnet.model import build_from_config, build_model
from efficientnet.scaling import MODEL_SIZES, ModelConfig, model_config, round_filters, round_repeats

__all__ = [
    "MODEL_SIZES",
    "ModelConfig",
    "build_from_config",
    "build_model",
    "count_multiply_adds",
    "load_keras_applications_weights",
    "model_config",
    "round_filters",
    "round_repeats",
]
