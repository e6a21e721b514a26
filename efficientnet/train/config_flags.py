"""absl flags for `TrainConfig`, shared by `teacher.train` and `student.train`.

Flags are generated from the config's fields, so a new setting is one line in
`TrainConfig` plus its help text here, and the two CLIs cannot drift apart.
Precedence: `TrainConfig` defaults < `--config=FILE.json` < flags given on the
command line.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Union, get_args, get_origin, get_type_hints

from absl import flags

from efficientnet.train.config import TrainConfig
from efficientnet.util import fileio

HELP = {
    "model_dir": "Run directory (local or gs://): config.json, checkpoints/, train/ summaries, export/.",
    "model": "Model name, efficientnet-b0 … efficientnet-b8 or efficientnet-l2.",
    "width": "Override the width multiplier (tiny models for CPU runs).",
    "depth": "Override the depth multiplier.",
    "resolution": "Override the input resolution.",
    "dropout_rate": "Override the dropout rate before the classifier.",
    "drop_connect_rate": "Override the stochastic-depth rate of the last block.",
    "small_images": "Stride 1 in the stem and stage 2, for inputs of 64 px or less.",
    "dataset": "Labeled training data: digits, tfds:NAME[/CONFIG], tfrecord:GLOB or folder:PATH (class subfolders).",
    "train_split": "Split of --dataset to train on; default: train (digits/tfds), none for file sources.",
    "eval_dataset": "Evaluation data, when not a split of --dataset.",
    "eval_split": "Split to evaluate on; default: test (validation for TFDS sets without test), none for files.",
    "data_dir": "TFDS data directory.",
    "num_classes": "Number of classes, for sources that cannot tell (ImageNet-format tfrecords).",
    "num_train_examples": "Number of training examples, for sources that cannot count them.",
    "cache": "Keep the training records (encoded images) in memory: small datasets on slow storage.",
    "input_sharding": "How the workers of a multi-worker run share the input: files (each reads and decodes "
    "only its own files) or exact (each reads everything and keeps its slices of a 1-replica run's batches).",
    "data_service": "grpc://HOST:PORT of a tf.data service dispatcher whose workers prepare the input "
    "(python -m efficientnet.data.service); default: this process prepares it.",
    "batch_size": "Global labeled batch size.",
    "epochs": "Training length in epochs of the labeled data.",
    "train_steps": "Training length in steps; overrides --epochs.",
    "optimizer": "rmsprop (reference), sgd (Nesterov momentum 0.9) or adam.",
    "base_learning_rate": "Learning rate per 256 labeled images (scaled linearly with --batch_size).",
    "lr_schedule": "exponential (×decay_rate every decay_epochs, reference) or cosine.",
    "warmup_epochs": "Linear warm-up length in epochs.",
    "lr_decay_epochs": "Epochs between exponential decays.",
    "lr_decay_rate": "Factor of each exponential decay.",
    "weight_decay": "L2 weight decay on non-BatchNorm variables.",
    "label_smoothing": "Label smoothing of the labeled cross-entropy.",
    "ema_decay": "Decay of the weight EMA used for evaluation and export.",
    "random_flip": "Random horizontal flips in training.",
    "randaugment_layers": "RandAugment N (0 disables RandAugment).",
    "randaugment_magnitude": "RandAugment M (10 = nominal maximum; above 10 extrapolates).",
    "unlabeled_dataset": "Pseudo-labeled data (tfrecord:GLOB written by pseudolabel.run).",
    "unlabeled_split": "Split of --unlabeled_dataset, if it has splits.",
    "unlabel_ratio": "Pseudo-labeled images per labeled image in each batch.",
    "label_type": "soft (teacher probabilities) or hard (argmax) pseudo-label targets.",
    "seed": "Seed of data order, augmentation and initialisation.",
    "strategy": "auto, tpu, mirrored (local GPUs, else logical CPUs), multiworker (needs TF_CONFIG) or cpu.",
    "tpu": "TPU name or address (implies --strategy=tpu under auto).",
    "sync_batch_norm": "Batch norm with the statistics of the global batch, summed across replicas "
    "(default: each replica's own slice, as Keras); no effect with one replica.",
    "precision": "float32, bfloat16 (TPU; on a CPU only the convolutions) or mixed_float16 (GPU); "
    "logits and exports stay float32.",
    "init_from": "keras (Keras ImageNet weights, needs network), noisy_student:CHECKPOINT (a reference TPU "
    "checkpoint's EMA weights: a prefix, a directory or a released one's name such as efficientnet-b0; "
    "noisy_student_raw:CHECKPOINT for its raw weights) or the path of one of our exports.",
    "checkpoint_every_steps": "Checkpoint interval in steps.",
    "log_every_steps": "Progress-line interval in steps.",
    "deterministic": "Deterministic TF ops (slower; exact resumes).",
    "jit_compile": "Compile the forward and backward pass with XLA.",
}
STUDENT_ONLY = ("unlabeled_dataset", "unlabeled_split", "unlabel_ratio", "label_type")

_CONFIG = flags.DEFINE_string("config", None, "JSON file of settings; flags given on the command line win.")


def define_flags(exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> None:
    """Defines one flag per `TrainConfig` field not in `exclude`."""
    hints = get_type_hints(TrainConfig)
    base = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        if field.name in exclude:
            continue
        default = (defaults or {}).get(field.name, getattr(base, field.name))
        kind = _base_type(hints[field.name])
        define = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float}.get(
            kind, flags.DEFINE_string
        )
        define(field.name, default, HELP[field.name])


def config_from_flags(exclude: tuple[str, ...] = (), **fixed: Any) -> TrainConfig:
    """Resolves defaults < --config file < explicitly given flags (< `fixed`)."""
    values: dict[str, Any] = {}
    if _CONFIG.value:
        values.update(fileio.read_json(_CONFIG.value))
    for field in dataclasses.fields(TrainConfig):
        if field.name in exclude:
            continue
        flag = flags.FLAGS[field.name]
        if flag.present or field.name not in values:
            values[field.name] = None if flag.value == "" else flag.value
    values.update(fixed)
    return TrainConfig.from_dict(values)


def _base_type(hint) -> type:
    if get_origin(hint) in (Union, types.UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    return hint
