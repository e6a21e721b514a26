"""`TrainConfig`: every setting of a training run, saved as `model_dir/config.json`.

Teacher and student runs are the same `TrainConfig`; a student is one with an
unlabeled (pseudo-labeled) stream, an `unlabel_ratio` and noise. The defaults
are the reference ImageNet recipe (docs/training.md); the student's noise
defaults live in `STUDENT_DEFAULTS`, the one place both `student.train` and
`pipelines.iterate` read them from.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import tensorflow as tf

from efficientnet.data import records, service
from efficientnet.data.input_pipeline import INPUT_SHARDINGS
from efficientnet.model import export, scaling
from efficientnet.train.distribute import PRECISIONS, STRATEGIES
from efficientnet.train.schedules import SCHEDULES
from efficientnet.util import fileio

# The student's noise (docs/noisy_student.md#the-student-and-its-noise):
# RandAugment N=2 at a small magnitude for small models, and 3 pseudo-labeled
# images per labeled one; dropout and stochastic depth keep the model's own
# rates. `student.train` takes these as its flag defaults and
# `pipelines.iterate` leaves unset settings to it, so they hold on every path.
STUDENT_DEFAULTS = {"randaugment_layers": 2, "randaugment_magnitude": 5.0, "unlabel_ratio": 3.0}
OPTIMIZERS = ("rmsprop", "sgd", "adam")
# Settings that may differ between a run and its resumption without changing
# what is computed.
RESUMABLE_DIFFERENCES = (
    "checkpoint_every_steps",
    "log_every_steps",
    "strategy",
    "tpu",
    "data_dir",
    "jit_compile",
    "data_service",
)


@dataclasses.dataclass
class TrainConfig:
    """Everything a training run needs; saved as `model_dir/config.json`.

    Defaults are the reference ImageNet recipe (docs/training.md) except where
    a comment says otherwise; the digits configs override sizes and lengths.
    """

    model_dir: str = ""
    # Model: a registered name plus optional overrides (scaling.OVERRIDABLE).
    model: str = "efficientnet-b0"
    width: float | None = None
    depth: float | None = None
    resolution: int | None = None
    dropout_rate: float | None = None
    drop_connect_rate: float | None = None
    small_images: bool | None = None
    # Labeled data and evaluation data.
    dataset: str = "digits"
    train_split: str | None = None  # None: the source's own (Source.resolve_split)
    eval_dataset: str | None = None  # defaults to `dataset`
    eval_split: str | None = None
    data_dir: str | None = None
    num_classes: int | None = None  # only for sources that cannot tell
    num_train_examples: int | None = None  # only for sources that cannot tell
    cache: bool = False
    input_sharding: str = "files"  # input_pipeline.INPUT_SHARDINGS
    data_service: str | None = None  # grpc://HOST:PORT of a tf.data service dispatcher
    # Length: `train_steps` wins over `epochs` (epochs of the labeled data).
    batch_size: int = 256
    epochs: float = 350.0
    train_steps: int | None = None
    # Optimisation (docs/training.md#optimiser-and-learning-rate).
    optimizer: str = "rmsprop"
    base_learning_rate: float = 0.016  # per 256 labeled images
    lr_schedule: str = "exponential"
    warmup_epochs: float = 5.0
    lr_decay_epochs: float = 2.4
    lr_decay_rate: float = 0.97
    weight_decay: float = 1e-5
    label_smoothing: float = 0.1
    ema_decay: float = 0.9999
    # Noise on the input (dropout and stochastic depth are model overrides).
    random_flip: bool = True
    randaugment_layers: int = 0
    randaugment_magnitude: float = 10.0
    # Pseudo-labeled stream (students only).
    unlabeled_dataset: str | None = None
    unlabeled_split: str | None = None
    unlabel_ratio: float = 0.0
    label_type: str = "soft"
    # Run.
    seed: int = 0
    strategy: str = "auto"
    tpu: str | None = None
    sync_batch_norm: bool = False  # per-replica batch statistics, as Keras; True as the reference on TPU
    precision: str = "float32"
    init_from: str | None = None
    checkpoint_every_steps: int = 500
    log_every_steps: int = 50
    deterministic: bool = False
    jit_compile: bool = False

    def without_noise(self) -> TrainConfig:
        """The same run with every student noise off: the paper's ablation.

        See docs/noisy_student.md#what-the-papers-ablations-show.
        """
        return dataclasses.replace(self, randaugment_layers=0, dropout_rate=0.0, drop_connect_rate=0.0)

    def finetune(self, steps: int, resolution: int | None = None) -> TrainConfig:
        """Labeled-only fine-tuning of this finished run, optionally at a larger resolution.

        The paper's optional last step (docs/noisy_student.md#fine-tuning-at-a-larger-resolution, FixRes): the run's
        export initialises a short run on the labeled data alone, without
        input noise; its export lands in MODEL_DIR/finetune/export.
        """
        return dataclasses.replace(
            self,
            model_dir=os.path.join(self.model_dir, "finetune"),
            init_from=export.export_dir(self.model_dir),
            unlabeled_dataset=None,
            unlabeled_split=None,
            unlabel_ratio=0.0,
            randaugment_layers=0,
            train_steps=steps,
            warmup_epochs=0.0,
            resolution=resolution or self.resolution,
        )

    def unlabeled_batch_size(self) -> int:
        """Pseudo-labeled images per step: `unlabel_ratio` × the labeled batch."""
        return int(self.batch_size * self.unlabel_ratio)

    def model_overrides(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in scaling.OVERRIDABLE}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown training setting(s) {unknown}")
        return cls(**values)

    def validate(self) -> None:
        """Fails before any work, naming the flag, on invalid or contradictory settings."""
        checks = [
            (bool(self.model_dir), "--model_dir is required"),
            (self.batch_size > 0, f"--batch_size must be positive, got {self.batch_size}"),
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (
                self.train_steps is None or self.train_steps > 0,
                f"--train_steps must be positive, got {self.train_steps}",
            ),
            (self.optimizer in OPTIMIZERS, f"--optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}"),
            (
                self.lr_schedule in SCHEDULES,
                f"--lr_schedule must be one of {list(SCHEDULES)}, got {self.lr_schedule!r}",
            ),
            (self.base_learning_rate > 0, f"--base_learning_rate must be positive, got {self.base_learning_rate}"),
            (self.warmup_epochs >= 0, f"--warmup_epochs must be >= 0, got {self.warmup_epochs}"),
            (self.weight_decay >= 0, f"--weight_decay must be >= 0, got {self.weight_decay}"),
            (0 <= self.label_smoothing < 1, f"--label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (0 <= self.ema_decay < 1, f"--ema_decay must be in [0, 1), got {self.ema_decay}"),
            (self.randaugment_layers >= 0, f"--randaugment_layers must be >= 0, got {self.randaugment_layers}"),
            (
                self.randaugment_magnitude >= 0,
                f"--randaugment_magnitude must be >= 0, got {self.randaugment_magnitude}",
            ),
            (
                self.input_sharding in INPUT_SHARDINGS,
                f"--input_sharding must be one of {list(INPUT_SHARDINGS)}, got {self.input_sharding!r}",
            ),
            (self.strategy in STRATEGIES, f"--strategy must be one of {list(STRATEGIES)}, got {self.strategy!r}"),
            (self.precision in PRECISIONS, f"--precision must be one of {list(PRECISIONS)}, got {self.precision!r}"),
            (self.tpu is None or self.strategy in ("auto", "tpu"), f"--tpu contradicts --strategy={self.strategy}"),
            (
                not (self.sync_batch_norm and self.jit_compile),
                "--sync_batch_norm cannot be combined with --jit_compile: the XLA-compiled pass runs per replica "
                "and cannot sum batch statistics across replicas",
            ),
            (
                self.label_type in records.LABEL_TYPES,
                f"--label_type must be one of {list(records.LABEL_TYPES)}, got {self.label_type!r}",
            ),
            (self.unlabel_ratio >= 0, f"--unlabel_ratio must be >= 0, got {self.unlabel_ratio}"),
            (
                (self.unlabeled_dataset is None) == (self.unlabel_ratio == 0),
                "--unlabeled_dataset and a positive --unlabel_ratio go together",
            ),
            (self.checkpoint_every_steps > 0, "--checkpoint_every_steps must be positive"),
            (self.log_every_steps > 0, "--log_every_steps must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.unlabeled_dataset is not None:
            unlabeled_batch = self.batch_size * self.unlabel_ratio
            if unlabeled_batch != int(unlabeled_batch):
                raise ValueError(f"--unlabel_ratio × --batch_size must be whole, got {unlabeled_batch}")
        if self.data_service is not None:
            service.parse_address(self.data_service)
        scaling.model_config(self.model, 1, **self.model_overrides())  # names the bad override


def student_config(values: dict[str, Any]) -> TrainConfig:
    """A student's settings: `STUDENT_DEFAULTS` under the given values."""
    return TrainConfig.from_dict(STUDENT_DEFAULTS | values)


def check_resumable(model_dir: str, config: TrainConfig) -> None:
    """Refuses to continue a model_dir that holds a run with other settings."""
    path = os.path.join(model_dir, fileio.RUN_CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return
    previous = fileio.read_json(path)
    differences = sorted(
        key
        for key, value in config.to_dict().items()
        if key not in RESUMABLE_DIFFERENCES and previous.get(key, value) != value
    )
    if differences:
        raise ValueError(
            f"{model_dir} holds a run with different settings ({', '.join('--' + d for d in differences)}); "
            "use another --model_dir or the same settings to resume"
        )
