"""Read checkpoints of the reference TPU code, the released Noisy Student weights among them.

Xie et al. 2020 released their Noisy Student EfficientNets (B0–B7, L2 at 800 px and L2 at
475 px) as TensorFlow 1 checkpoints written by the reference TPU implementation
(docs/efficientnet.md#released-checkpoints). This module turns such a checkpoint into the
weights of our network, which has the same layers, so the model then returns the reference
model's logits. As `efficientnet.model.keras_weights` does for keras.applications, the
correspondence is a name translation, layer by layer, with every shape checked first.

Where the names come from (tensorflow/tpu, `models/official/efficientnet/`,
`efficientnet_model.py` and `efficientnet_builder.py` at commit
22d5cab9cb59c1255589ac4401e5f3a47c01787a, and `utils.py`):

- `build_model` opens `tf.variable_scope(model_name)`, so every variable starts with the
  size's name, e.g. `efficientnet-b0/`; `Model.call` then opens `stem`, `blocks_<i>` (i
  counts blocks over the whole network from 0, in the order `Model._build` creates them:
  stage by stage, the scaled repeats of each) and `head`.
- The layers are `tf.layers` classes, which take their name when first called, numbered per
  kind within the open scope: the first `Conv2D` is `conv2d`, the next `conv2d_1`; the batch
  norm (`utils.TpuBatchNormalization` in training, `utils.BatchNormalization` named to match
  in evaluation) is `tpu_batch_normalization`, `_1`, `_2`; the classifier is `dense`.
- `MBConvBlock.call` calls the expansion conv and its batch norm (only when expand_ratio is
  not 1), the depthwise conv and its batch norm, the squeeze-excite convs inside
  `variable_scope('se')`, then the projection conv and its batch norm. So a block with
  expansion holds `conv2d` (expand), `tpu_batch_normalization`, `depthwise_conv2d`,
  `tpu_batch_normalization_1`, `se/conv2d`, `se/conv2d_1`, `conv2d_1` (project),
  `tpu_batch_normalization_2`; a block without (the first stage's) holds `depthwise_conv2d`,
  `tpu_batch_normalization`, `se/conv2d`, `se/conv2d_1`, `conv2d` (project),
  `tpu_batch_normalization_1`.
- Training keeps an exponential moving average of every trainable variable and of the batch
  norms' moving statistics (`utils.get_ema_vars`); TensorFlow's `ExponentialMovingAverage`
  stores each average beside its variable as `<name>/ExponentialMovingAverage`. The reference
  evaluates with the averages (`EvalCkptDriver.restore_model`), and so do we by default.

Keras's `keras/applications/efficientnet_weight_update_util.py` (keras-team/keras), the
script that converted these checkpoints for keras.applications, maps the same names.

The released archives hold one checkpoint each, under
`https://storage.googleapis.com/cloud-tpu-checkpoints/efficientnet/noisystudent/`, named in the
table of the reference README (`noisy_student_efficientnet-b0.tar.gz` …
`noisy_student_efficientnet-l2_475.tar.gz`). `resolve_checkpoint` downloads and unpacks one into
a local cache when given its name alone.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from efficientnet.model import scaling
from efficientnet.util.registry import Registry

EMA_SUFFIX = "/ExponentialMovingAverage"
# `--init_from` values that start from an official checkpoint: its averaged (EMA) weights, as
# the reference evaluates, or the raw weights the optimiser was updating.
INIT_PREFIX = "noisy_student:"
RAW_INIT_PREFIX = "noisy_student_raw:"
RELEASE_URL = "https://storage.googleapis.com/cloud-tpu-checkpoints/efficientnet/noisystudent/"
# Our classifier: it takes `head/dense`, or keeps its own weights for another label set.
CLASSIFIER_LAYER = "logits"

# Variable names inside one layer's scope, in the order of the Keras layer's `weights`.
_CONV = ("kernel",)
_CONV_WITH_BIAS = ("kernel", "bias")
_DEPTHWISE = ("depthwise_kernel",)
_BATCH_NORM = ("gamma", "beta", "moving_mean", "moving_variance")


@dataclasses.dataclass(frozen=True)
class ReleasedCheckpoint:
    """One released Noisy Student checkpoint (table of the TPU reference README).

    `model` is the size it holds and `resolution` the one it is evaluated at; `top1` is the
    published ImageNet top-1 (%) (docs/efficientnet.md#multiply-adds-and-accuracy).
    """

    model: str
    resolution: int
    top1: float

    def archive(self, name: str) -> str:
        return f"noisy_student_{name}.tar.gz"


RELEASED: Registry[ReleasedCheckpoint] = Registry("released Noisy Student checkpoint")
for _name, _release in {
    "efficientnet-b0": ReleasedCheckpoint("efficientnet-b0", 224, 78.8),
    "efficientnet-b1": ReleasedCheckpoint("efficientnet-b1", 240, 81.5),
    "efficientnet-b2": ReleasedCheckpoint("efficientnet-b2", 260, 82.4),
    "efficientnet-b3": ReleasedCheckpoint("efficientnet-b3", 300, 84.1),
    "efficientnet-b4": ReleasedCheckpoint("efficientnet-b4", 380, 85.3),
    "efficientnet-b5": ReleasedCheckpoint("efficientnet-b5", 456, 86.1),
    "efficientnet-b6": ReleasedCheckpoint("efficientnet-b6", 528, 86.4),
    "efficientnet-b7": ReleasedCheckpoint("efficientnet-b7", 600, 86.9),
    "efficientnet-l2": ReleasedCheckpoint("efficientnet-l2", 800, 88.4),
    # The same L2 fine-tuned at 475 px (Xie et al. 2020, §3.1); its variables are `efficientnet-l2/…`.
    "efficientnet-l2_475": ReleasedCheckpoint("efficientnet-l2", 475, 88.2),
}.items():
    RELEASED.add(_name, _release)


def official_variable_names(config: scaling.ModelConfig) -> dict[str, list[str]]:
    """Our layer name → the reference's names of its variables, in the order of its weights.

    Computed from the config alone (no model is built), so it is cheap for L2. Names carry
    the size's scope (`efficientnet-b0/…`) and no `/ExponentialMovingAverage` suffix.
    """

    def scoped(scope: str, layer: str, variables: tuple[str, ...]) -> list[str]:
        return [f"{config.name}/{scope}/{layer}/{variable}" for variable in variables]

    names = {
        "stem_conv": scoped("stem", "conv2d", _CONV),
        "stem_bn": scoped("stem", "tpu_batch_normalization", _BATCH_NORM),
    }
    for index, block in enumerate(scaling.block_specs(config)):
        scope, prefix = f"blocks_{index}", block.name
        # Numbered per kind in call order: the expansion, when there is one, takes the first name.
        expanded = block.expand_ratio != 1
        conv = ["conv2d", "conv2d_1"] if expanded else ["conv2d"]
        batch_norm = ["tpu_batch_normalization", "tpu_batch_normalization_1", "tpu_batch_normalization_2"]
        if expanded:
            names[f"{prefix}_expand_conv"] = scoped(scope, conv.pop(0), _CONV)
            names[f"{prefix}_expand_bn"] = scoped(scope, batch_norm.pop(0), _BATCH_NORM)
        names[f"{prefix}_dwconv"] = scoped(scope, "depthwise_conv2d", _DEPTHWISE)
        names[f"{prefix}_dwconv_bn"] = scoped(scope, batch_norm.pop(0), _BATCH_NORM)
        names[f"{prefix}_se_reduce"] = scoped(scope, "se/conv2d", _CONV_WITH_BIAS)
        names[f"{prefix}_se_expand"] = scoped(scope, "se/conv2d_1", _CONV_WITH_BIAS)
        names[f"{prefix}_project_conv"] = scoped(scope, conv.pop(0), _CONV)
        names[f"{prefix}_project_bn"] = scoped(scope, batch_norm.pop(0), _BATCH_NORM)
    names["head_conv"] = scoped("head", "conv2d", _CONV)
    names["head_bn"] = scoped("head", "tpu_batch_normalization", _BATCH_NORM)
    names[CLASSIFIER_LAYER] = scoped("head", "dense", _CONV_WITH_BIAS)
    return names


def parse_init_from(init_from: str) -> tuple[str, bool] | None:
    """`noisy_student:CKPT` → (CKPT, EMA weights); `noisy_student_raw:CKPT` → (CKPT, raw); else None."""
    for prefix, use_ema in ((INIT_PREFIX, True), (RAW_INIT_PREFIX, False)):
        if init_from.startswith(prefix):
            checkpoint = init_from[len(prefix) :]
            if not checkpoint:
                raise ValueError(f"--init_from={init_from}: name a checkpoint after {prefix!r}")
            return checkpoint, use_ema
    return None


def default_cache_dir() -> str:
    """Where released checkpoints are unpacked: $XDG_CACHE_HOME (default ~/.cache)/efficientnet/noisy_student."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "efficientnet", "noisy_student")


def resolve_checkpoint(checkpoint: str, cache_dir: str | None = None) -> str:
    """A checkpoint prefix from a prefix, a directory holding one, or a released checkpoint's name.

    A name from `RELEASED` (e.g. `efficientnet-b0`) that is not an existing path is looked up
    in `cache_dir` (default `default_cache_dir()`) and downloaded there when missing.

    Raises:
      FileNotFoundError: no checkpoint at the path.
      ValueError: a directory holds several checkpoints, or a download failed (the message
        says to download the archive and pass its directory).
    """
    if not tf.io.gfile.exists(checkpoint) and not tf.io.gfile.exists(checkpoint + ".index"):
        if checkpoint in RELEASED:
            return checkpoint_prefix(fetch_released(checkpoint, cache_dir))
        if checkpoint.startswith("efficientnet-") and "/" not in checkpoint:
            RELEASED.get(checkpoint)  # a mistyped name: the error lists the released ones
    return checkpoint_prefix(checkpoint)


def released_name_of(checkpoint: str) -> str | None:
    """The released checkpoint a path or name stands for: its name, or a folder `noisy_student_<name>` on it."""
    if checkpoint in RELEASED:
        return checkpoint
    for part in reversed(checkpoint.split("/")):
        name = part.removeprefix("noisy_student_")
        if part != name and name in RELEASED:
            return name
    return None


def checkpoint_prefix(path: str) -> str:
    """`path` itself when it is a checkpoint prefix, else the one checkpoint in the directory `path`.

    The directory's `checkpoint` state file is followed when it names an existing checkpoint;
    otherwise the `*.index` files in the directory and its subdirectories (an unpacked release
    archive has one folder) must name exactly one.
    """
    if tf.io.gfile.exists(path + ".index"):
        return path
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest and tf.io.gfile.exists(latest + ".index"):
            return latest
        indexes = sorted(
            tf.io.gfile.glob(os.path.join(path, "*.index")) + tf.io.gfile.glob(os.path.join(path, "*", "*.index"))
        )
        if len(indexes) == 1:
            return indexes[0][: -len(".index")]
        if indexes:
            raise ValueError(f"{path} holds {len(indexes)} checkpoints ({', '.join(indexes)}): pass one prefix")
    raise FileNotFoundError(
        f"no TensorFlow checkpoint at {path!r} (expected PREFIX.index and PREFIX.data-*, or a directory holding them)"
    )


def fetch_released(name: str, cache_dir: str | None = None) -> str:
    """The local directory of released checkpoint `name`, downloaded and unpacked on first use.

    The archive is unpacked into a temporary folder that is renamed into place, so the cache
    never holds a half-unpacked checkpoint.
    """
    release = RELEASED.get(name)
    cache_dir = cache_dir or default_cache_dir()
    directory = os.path.join(cache_dir, f"noisy_student_{name}")
    if os.path.isdir(directory):
        return directory
    url = RELEASE_URL + release.archive(name)
    os.makedirs(cache_dir, exist_ok=True)
    logging.info("downloading %s into %s", url, directory)
    unpacking = tempfile.mkdtemp(prefix=".unpacking-", dir=cache_dir)
    try:
        with tempfile.TemporaryFile() as archive:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, archive)
            archive.seek(0)
            with tarfile.open(fileobj=archive, mode="r:gz") as tar:
                tar.extractall(unpacking, filter="data")
        os.rename(unpacking, directory)
    except (urllib.error.URLError, OSError, tarfile.TarError) as error:
        reason = getattr(error, "reason", None) or error
        raise ValueError(
            f"cannot download the released checkpoint {name!r} from {url} ({reason}); download it elsewhere, "
            f"unpack it (tar xzf {release.archive(name)}) and pass its directory instead, e.g. "
            f"--init_from={INIT_PREFIX}noisy_student_{name} or --checkpoint=noisy_student_{name}"
        ) from None
    finally:
        shutil.rmtree(unpacking, ignore_errors=True)
    return directory


def read_variable_shapes(prefix: str) -> dict[str, tuple[int, ...]]:
    """Every variable of a checkpoint and its shape (`tf.train.list_variables`; local or gs://)."""
    return {name: tuple(shape) for name, shape in tf.train.list_variables(prefix)}


def checkpoint_scope(shapes: dict[str, tuple[int, ...]], where: str) -> str:
    """The size a reference checkpoint holds: the `efficientnet-…` scope of its variables."""
    scopes = sorted({name.split("/", 1)[0] for name in shapes if name.startswith("efficientnet-")})
    if len(scopes) != 1:
        found = f"several: {scopes}" if scopes else "none"
        raise ValueError(
            f"{where} is not a checkpoint of one EfficientNet (variable scopes efficientnet-…: {found}; "
            "expected names like efficientnet-b0/stem/conv2d/kernel)"
        )
    return scopes[0]


def checkpoint_num_classes(shapes: dict[str, tuple[int, ...]], scope: str, where: str) -> int:
    """The size of the checkpoint's classifier (`head/dense/kernel` is [features, classes])."""
    kernel = shapes.get(f"{scope}/head/dense/kernel")
    if kernel is None:
        raise ValueError(f"{where} has no classifier ({scope}/head/dense/kernel)")
    return int(kernel[-1])


def load_official_checkpoint(
    model: keras.Model,
    config: scaling.ModelConfig,
    checkpoint: str,
    *,
    use_ema: bool = True,
    include_classifier: bool | None = None,
    cache_dir: str | None = None,
) -> keras.Model:
    """Copies a reference TPU checkpoint's weights into `model`.

    Every name and shape is checked against the checkpoint's variable list before any tensor
    is read, so a wrong checkpoint fails in seconds, also for L2.

    Args:
      model: Ours, built from `config`.
      config: The model's config; its `name` must be the checkpoint's size.
      checkpoint: A checkpoint prefix or directory (local or gs://), or the name of a released
        checkpoint (`RELEASED`), fetched into `cache_dir` when missing.
      use_ema: The `/ExponentialMovingAverage` copies (what the reference evaluates with);
        False reads the raw variables.
      include_classifier: None copies the classifier when the checkpoint has the model's
        number of classes and keeps the model's own otherwise (fine-tuning on another label
        set); True requires it; False never copies it.

    Returns:
      `model`, with every weight replaced (the classifier's as described).

    Raises:
      ValueError: a checkpoint of another size (naming both), of other widths or depth, or
        lacking variables the model needs (naming them).
    """
    prefix = resolve_checkpoint(checkpoint, cache_dir)
    shapes = read_variable_shapes(prefix)
    scope = checkpoint_scope(shapes, prefix)
    if scope != config.name:
        raise ValueError(
            f"the checkpoint {prefix} holds {scope} (its variables are under '{scope}/'), but the model is "
            f"{config.name}: build the model as {scope} (--model={scope}) or pass a checkpoint of {config.name}"
        )
    suffix = EMA_SUFFIX if use_ema else ""
    names = official_variable_names(config)
    if include_classifier is None:
        include_classifier = checkpoint_num_classes(shapes, scope, prefix) == config.num_classes
    if not include_classifier:
        del names[CLASSIFIER_LAYER]
    _check_depth(shapes, scope, config, prefix)
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    unknown = sorted(set(names) - set(layers))
    if unknown:
        raise ValueError(f"{model.name!r} lacks layers {unknown[:5]}: was it built from {config.name}'s config?")
    _check_present(shapes, [name + suffix for layer in names.values() for name in layer], prefix, use_ema)
    for layer_name, variables in names.items():
        layer = layers[layer_name]
        for name, weight in zip(variables, layer.weights, strict=True):
            if shapes[name + suffix] != tuple(weight.shape):
                raise ValueError(
                    f"{prefix}: {name + suffix} has shape {list(shapes[name + suffix])}, but {layer_name!r} of the "
                    f"model needs {list(weight.shape)}: the checkpoint's {scope} has other widths than the model "
                    f"(width {config.width}, {config.num_classes} classes)"
                )
    reader = tf.train.load_checkpoint(prefix)
    for layer_name, variables in names.items():
        layer = layers[layer_name]
        layer.set_weights([np.asarray(reader.get_tensor(name + suffix), dtype="float32") for name in variables])
    return model


def _check_depth(shapes: dict[str, tuple[int, ...]], scope: str, config: scaling.ModelConfig, where: str) -> None:
    """Equal block counts: another depth would otherwise only show as missing or unused blocks."""
    indices = {int(name.split("/")[1][len("blocks_") :]) for name in shapes if name.startswith(f"{scope}/blocks_")}
    ours = len(scaling.block_specs(config))
    if indices and max(indices) + 1 != ours:
        raise ValueError(
            f"{where} holds {max(indices) + 1} blocks of {scope}, the model {ours} (depth {config.depth}): "
            f"build the model at the checkpoint's depth"
        )


def _check_present(shapes: dict[str, tuple[int, ...]], needed: list[str], where: str, use_ema: bool) -> None:
    missing = [name for name in needed if name not in shapes]
    if not missing:
        return
    hint = ""
    if use_ema and all(name[: -len(EMA_SUFFIX)] in shapes for name in missing):
        hint = (
            f"; it holds the raw variables: load those with --init_from={RAW_INIT_PREFIX}CHECKPOINT "
            "(or --weights=raw when converting)"
        )
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    raise ValueError(f"{where} lacks {len(missing)} variable(s) the model needs: {shown}{hint}")
