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
from efficientnet.util import fileio, settings
from efficientnet.util.settings import setting

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

    model_dir: str = setting(
        "", "Run directory (local or gs://): config.json, checkpoints/, train/ summaries, export/."
    )
    # Model: a registered name plus optional overrides (scaling.OVERRIDABLE).
    model: str = setting("efficientnet-b0", "Model name, efficientnet-b0 … efficientnet-b8 or efficientnet-l2.")
    width: float | None = setting(None, "Override the width multiplier (tiny models for CPU runs).")
    depth: float | None = setting(None, "Override the depth multiplier.")
    resolution: int | None = setting(None, "Override the input resolution.")
    dropout_rate: float | None = setting(None, "Override the dropout rate before the classifier.")
    drop_connect_rate: float | None = setting(None, "Override the stochastic-depth rate of the last block.")
    small_images: bool | None = setting(None, "Stride 1 in the stem and stage 2, for inputs of 64 px or less.")
    # Labeled data and evaluation data; a split left None is the source's own (Source.resolve_split).
    dataset: str = setting(
        "digits",
        "Labeled training data: digits, tfds:NAME[/CONFIG], tfrecord:GLOB or folder:PATH (class subfolders).",
    )
    train_split: str | None = setting(
        None, "Split of --dataset to train on; default: train (digits/tfds), none for file sources."
    )
    eval_dataset: str | None = setting(None, "Evaluation data, when not a split of --dataset.")
    eval_split: str | None = setting(
        None, "Split to evaluate on; default: test (validation for TFDS sets without test), none for files."
    )
    data_dir: str | None = setting(None, "TFDS data directory.")
    num_classes: int | None = setting(
        None, "Number of classes, for sources that cannot tell (ImageNet-format tfrecords)."
    )
    num_train_examples: int | None = setting(None, "Number of training examples, for sources that cannot count them.")
    cache: bool = setting(
        False, "Keep the training records (encoded images) in memory: small datasets on slow storage."
    )
    input_sharding: str = setting(
        "files",
        "How the workers of a multi-worker run share the input: files (each reads and decodes "
        "only its own files) or exact (each reads everything and keeps its slices of a 1-replica run's batches).",
        choices=INPUT_SHARDINGS,
    )
    data_service: str | None = setting(
        None,
        "grpc://HOST:PORT of a tf.data service dispatcher whose workers prepare the input "
        "(python -m efficientnet.data.service); default: this process prepares it.",
    )
    # Length: `train_steps` wins over `epochs` (epochs of the labeled data).
    batch_size: int = setting(256, "Global labeled batch size.")
    epochs: float = setting(350.0, "Training length in epochs of the labeled data.")
    train_steps: int | None = setting(None, "Training length in steps; overrides --epochs.")
    # Optimisation (docs/training.md#optimiser-and-learning-rate).
    optimizer: str = setting("rmsprop", "rmsprop (reference), sgd (Nesterov momentum 0.9) or adam.", choices=OPTIMIZERS)
    base_learning_rate: float = setting(
        0.016, "Learning rate per 256 labeled images (scaled linearly with --batch_size)."
    )
    lr_schedule: str = setting(
        "exponential", "exponential (×decay_rate every decay_epochs, reference) or cosine.", choices=SCHEDULES
    )
    warmup_epochs: float = setting(5.0, "Linear warm-up length in epochs.")
    lr_decay_epochs: float = setting(2.4, "Epochs between exponential decays.")
    lr_decay_rate: float = setting(0.97, "Factor of each exponential decay.")
    weight_decay: float = setting(1e-5, "L2 weight decay on non-BatchNorm variables.")
    label_smoothing: float = setting(0.1, "Label smoothing of the labeled cross-entropy.")
    ema_decay: float = setting(0.9999, "Decay of the weight EMA used for evaluation and export.")
    # Noise on the input (dropout and stochastic depth are model overrides).
    random_flip: bool = setting(True, "Random horizontal flips in training.")
    randaugment_layers: int = setting(0, "RandAugment N (0 disables RandAugment).")
    randaugment_magnitude: float = setting(10.0, "RandAugment M (10 = nominal maximum; above 10 extrapolates).")
    # Pseudo-labeled stream (students only).
    unlabeled_dataset: str | None = setting(None, "Pseudo-labeled data (tfrecord:GLOB written by pseudolabel.run).")
    unlabeled_split: str | None = setting(None, "Split of --unlabeled_dataset, if it has splits.")
    unlabel_ratio: float = setting(0.0, "Pseudo-labeled images per labeled image in each batch.")
    label_type: str = setting(
        "soft", "soft (teacher probabilities) or hard (argmax) pseudo-label targets.", choices=records.LABEL_TYPES
    )
    # Run.
    seed: int = setting(0, "Seed of data order, augmentation and initialisation.")
    strategy: str = setting(
        "auto",
        "auto, tpu, mirrored (local GPUs, else logical CPUs), multiworker (needs TF_CONFIG) or cpu.",
        choices=STRATEGIES,
    )
    tpu: str | None = setting(None, "TPU name or address (implies --strategy=tpu under auto).")
    # Off by default, as Keras; the reference turns it on for TPUs.
    sync_batch_norm: bool = setting(
        False,
        "Batch norm with the statistics of the global batch, summed across replicas "
        "(default: each replica's own slice, as Keras); no effect with one replica.",
    )
    precision: str = setting(
        "float32",
        "float32, bfloat16 (TPU; on a CPU only the convolutions) or mixed_float16 (GPU); "
        "logits and exports stay float32.",
        choices=PRECISIONS,
    )
    init_from: str | None = setting(
        None,
        "keras (Keras ImageNet weights, needs network), noisy_student:CHECKPOINT (a reference TPU "
        "checkpoint's EMA weights: a prefix, a directory or a released one's name such as efficientnet-b0; "
        "noisy_student_raw:CHECKPOINT for its raw weights) or the path of one of our exports.",
    )
    checkpoint_every_steps: int = setting(500, "Checkpoint interval in steps.")
    log_every_steps: int = setting(50, "Progress-line interval in steps.")
    deterministic: bool = setting(False, "Deterministic TF ops (slower; exact resumes).")
    jit_compile: bool = setting(False, "Compile the forward and backward pass with XLA.")

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
    def from_dict(cls, values: dict[str, Any], where: str = "") -> TrainConfig:
        """The settings of a config file's section `where`; an unknown key or a wrong type names its path."""
        return settings.from_dict(cls, values, where)

    def validate(self) -> None:
        """Fails before any work, naming the flag, on invalid or contradictory settings."""
        settings.check_choices(self)
        checks = [
            (bool(self.model_dir), "--model_dir is required"),
            (self.batch_size > 0, f"--batch_size must be positive, got {self.batch_size}"),
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (
                self.train_steps is None or self.train_steps > 0,
                f"--train_steps must be positive, got {self.train_steps}",
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
            (self.tpu is None or self.strategy in ("auto", "tpu"), f"--tpu contradicts --strategy={self.strategy}"),
            (
                not (self.sync_batch_norm and self.jit_compile),
                "--sync_batch_norm cannot be combined with --jit_compile: the XLA-compiled pass runs per replica "
                "and cannot sum batch statistics across replicas",
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
