"""EfficientNet B0–B8 and L2 for the Noisy Student pipeline.

The package is layered; each layer imports only the ones above it in this list:

  efficientnet.util   plumbing: name registries, atomic file I/O, CLI error handling, console
  efficientnet.data   dataset sources, crops, RandAugment, tf.data input pipelines
  efficientnet.model  compound scaling, the network, exports and inference on them
  efficientnet.train  the one training loop that teacher and student configure

Public entry points (imported lazily, so that `import efficientnet.util.…` does
not pull in TensorFlow): `build_model`, `build_from_config`, `model_config`,
`MODEL_SIZES`, `ModelConfig`, `round_filters`, `round_repeats`,
`load_keras_applications_weights`, `load_official_checkpoint`, `count_multiply_adds`.
"""

import importlib

from efficientnet.util.console import quiet_native_logs

quiet_native_logs()  # a `python -m efficientnet.…` CLI: filter TensorFlow's native log noise (no-op on import)

_PUBLIC = {
    "MODEL_SIZES": "efficientnet.model.scaling",
    "ModelConfig": "efficientnet.model.scaling",
    "model_config": "efficientnet.model.scaling",
    "round_filters": "efficientnet.model.scaling",
    "round_repeats": "efficientnet.model.scaling",
    "build_model": "efficientnet.model.network",
    "build_from_config": "efficientnet.model.network",
    "count_multiply_adds": "efficientnet.model.flops",
    "load_keras_applications_weights": "efficientnet.model.keras_weights",
    "load_official_checkpoint": "efficientnet.model.official_checkpoint",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'efficientnet' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
