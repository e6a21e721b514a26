"""The one training loop: teacher and student both configure it.

A teacher run is `train(TrainConfig(...))`. A student run is the same call
with an unlabeled (pseudo-labeled) stream, an `unlabel_ratio` and noise
switched on: nothing here is teacher- or
student-specific.

Resume order, explicit: read `config.json` (refuse a model_dir holding a
different run), build model and optimizer under the strategy, restore the
latest checkpoint (model, optimizer, EMA, random-generator states, step), then
rebuild the input pipeline positioned at that step. Because the pipeline is
deterministic under the seed, a run killed at any moment and restarted ends
with the same step count and the same weights as an uninterrupted one, up to
float reduction order.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from efficientnet.data import input_pipeline, preprocessing, randaugment
from efficientnet.data.datasets import Source, open_source
from efficientnet.model import export, scaling
from efficientnet.model.evaluation import evaluate
from efficientnet.model.network import build_from_config
from efficientnet.train import losses
from efficientnet.train.distribute import make_strategy, set_precision
from efficientnet.train.schedules import LearningRateSchedule, ScheduleConfig, ema_decay
from efficientnet.util import fileio

OPTIMIZERS = ("rmsprop", "sgd", "adam")
LABEL_TYPES = ("soft", "hard")
CONFIG_FILE = "config.json"
# Settings that may differ between a run and its resumption without changing
# what is computed.
RESUMABLE_DIFFERENCES = ("checkpoint_every_steps", "log_every_steps", "strategy", "tpu", "data_dir", "jit_compile")


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
    train_split: str | None = "train"
    eval_dataset: str | None = None  # defaults to `dataset`
    eval_split: str | None = "test"
    data_dir: str | None = None
    num_classes: int | None = None  # only for sources that cannot tell
    num_train_examples: int | None = None  # only for sources that cannot tell
    cache: bool = False
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
            init_from=os.path.join(self.model_dir, "export"),
            unlabeled_dataset=None,
            unlabeled_split=None,
            unlabel_ratio=0.0,
            randaugment_layers=0,
            train_steps=steps,
            warmup_epochs=0.0,
            resolution=resolution or self.resolution,
        )

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
        from efficientnet.train.distribute import PRECISIONS, STRATEGIES
        from efficientnet.train.schedules import SCHEDULES

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
            (self.strategy in STRATEGIES, f"--strategy must be one of {list(STRATEGIES)}, got {self.strategy!r}"),
            (self.precision in PRECISIONS, f"--precision must be one of {list(PRECISIONS)}, got {self.precision!r}"),
            (self.tpu is None or self.strategy in ("auto", "tpu"), f"--tpu contradicts --strategy={self.strategy}"),
            (
                self.label_type in LABEL_TYPES,
                f"--label_type must be one of {list(LABEL_TYPES)}, got {self.label_type!r}",
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
        scaling.model_config(self.model, 1, **self.model_overrides())  # names the bad override


@dataclasses.dataclass
class Data:
    """Sources opened once per run."""

    train: Source
    eval: Source
    unlabeled: Source | None
    num_classes: int
    num_train_examples: int


def open_data(config: TrainConfig) -> Data:
    train = open_source(config.dataset, data_dir=config.data_dir)
    evaluation = open_source(config.eval_dataset, data_dir=config.data_dir) if config.eval_dataset else train
    unlabeled = open_source(config.unlabeled_dataset, data_dir=config.data_dir) if config.unlabeled_dataset else None
    num_classes = config.num_classes or train.num_classes
    if num_classes is None:
        raise ValueError(f"cannot tell the number of classes of {config.dataset!r}; pass --num_classes")
    for name, source in (("--eval_dataset", evaluation), ("--unlabeled_dataset", unlabeled)):
        if source is not None and source.num_classes not in (None, num_classes):
            raise ValueError(
                f"{name} {source.spec!r} has {source.num_classes} classes but the training data has {num_classes}"
            )
    num_train_examples = config.num_train_examples or train.num_examples(config.train_split)
    if num_train_examples is None and config.train_steps is None:
        raise ValueError(f"cannot count the examples of {config.dataset!r}; pass --train_steps or --num_train_examples")
    return Data(train, evaluation, unlabeled, num_classes, num_train_examples or config.train_steps * config.batch_size)


def total_steps(config: TrainConfig, data: Data) -> int:
    if config.train_steps is not None:
        return config.train_steps
    return max(1, math.ceil(config.epochs * data.num_train_examples / config.batch_size))


def make_optimizer(config: TrainConfig, data: Data, steps: int) -> keras.optimizers.Optimizer:
    schedule = LearningRateSchedule(
        ScheduleConfig(
            base_learning_rate=config.base_learning_rate,
            batch_size=config.batch_size,
            steps_per_epoch=data.num_train_examples / config.batch_size,
            total_steps=steps,
            warmup_epochs=config.warmup_epochs,
            decay_epochs=config.lr_decay_epochs,
            decay_rate=config.lr_decay_rate,
            schedule=config.lr_schedule,
        )
    )
    if config.optimizer == "rmsprop":
        optimizer = keras.optimizers.RMSprop(schedule, rho=0.9, momentum=0.9, epsilon=1e-3)
    elif config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    else:
        optimizer = keras.optimizers.Adam(schedule)
    if config.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def make_augment(config: TrainConfig, resolution: int):
    if config.randaugment_layers == 0:
        return None
    # The reference's 100 px translate and 40 px cutout are ImageNet-sized;
    # small images scale them with the resolution (100/224 and 40/224).
    scale = resolution / 224 if preprocessing.is_small(resolution) else 1.0
    return randaugment.RandAugment(
        num_layers=config.randaugment_layers,
        magnitude=config.randaugment_magnitude,
        translate_max=randaugment.DEFAULT_TRANSLATE_MAX * scale,
        cutout_max=randaugment.DEFAULT_CUTOUT_MAX * scale,
    )


def check_resumable(model_dir: str, config: TrainConfig) -> None:
    """Refuses to continue a model_dir that holds a run with other settings."""
    path = os.path.join(model_dir, CONFIG_FILE)
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


class EMA:
    """Exponential moving average of the weights and BN statistics (docs/training.md#ema)."""

    def __init__(self, variables: list[tf.Variable], decay: float):
        self.variables = variables
        self.decay = decay
        self.averages = [
            tf.Variable(v, trainable=False, name=f"ema_{i}", synchronization=tf.VariableSynchronization.ON_WRITE)
            for i, v in enumerate(variables)
        ]

    @tf.function
    def update(self, step):
        decay = ema_decay(step, self.decay)
        for average, variable in zip(self.averages, self.variables, strict=True):
            average.assign(average * decay + tf.cast(variable, average.dtype) * (1.0 - decay))

    def swap(self) -> None:
        """Exchanges live and averaged values (call twice to undo)."""
        for average, variable in zip(self.averages, self.variables, strict=True):
            live = variable.numpy()
            variable.assign(average.numpy())
            average.assign(live)


def train(config: TrainConfig, data: Data | None = None) -> dict[str, Any]:
    """Trains (or resumes) a run and exports its EMA model; returns final metrics.

    `data` is `open_data(config)` when the caller has already opened the
    sources to check them (opening a large image folder lists every file).
    """
    config.validate()
    check_resumable(config.model_dir, config)
    data = data or open_data(config)
    fileio.check_writable_dir(config.model_dir, "--model_dir")
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy, config.tpu)
    set_precision(config.precision)
    model_config = scaling.model_config(config.model, data.num_classes, **config.model_overrides())
    steps = total_steps(config, data)
    fileio.write_json(os.path.join(config.model_dir, CONFIG_FILE), config.to_dict())

    with strategy.scope():
        model = build_from_config(model_config)
        optimizer = make_optimizer(config, data, steps)
        optimizer.build(model.trainable_variables)
        ema = EMA(list(model.weights), config.ema_decay)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    random_states = [v for v in model.variables if "seed_generator_state" in v.path]
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, ema=ema.averages, random_states=random_states, step=step
    )
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(config.model_dir, "checkpoints"), max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("resumed from %s at step %d", manager.latest_checkpoint, int(step.numpy()))
    elif config.init_from:
        initialize_from(model, config.init_from, model_config)
        for average, variable in zip(ema.averages, ema.variables, strict=True):
            average.assign(variable)

    start = int(step.numpy())
    if start < steps:
        run_steps(config, data, model_config, strategy, model, optimizer, ema, step, manager, start, steps)

    ema.swap()
    metrics = evaluate(model, data.eval, config.eval_split, model_config.resolution, config.batch_size)
    metadata = {
        "dataset": config.dataset,
        "eval_dataset": config.eval_dataset or config.dataset,
        "eval_split": config.eval_split,
        "steps": steps,
        "metrics": metrics,
        "role": "student" if config.unlabeled_dataset else "teacher",
    }
    export.save_export(
        os.path.join(config.model_dir, "export"),
        model,
        model_config,
        class_names=list(data.train.class_names) if data.train.class_names else None,
        extra=metadata,
    )
    ema.swap()
    logging.info("exported %s: %s", os.path.join(config.model_dir, "export"), _format_metrics(metrics))
    return metrics


def run_steps(config, data, model_config, strategy, model, optimizer, ema, step, manager, start, steps) -> None:
    """The step loop: distributed train step, EMA, logging, checkpoints."""
    augment = make_augment(config, model_config.resolution)

    def stream(source, split, batch_size, seed):
        batches = input_pipeline.train_dataset(
            source,
            split,
            batch_size=batch_size,
            resolution=model_config.resolution,
            seed=seed,
            random_flip=config.random_flip,
            augment=augment,
            cache=config.cache,
            skip_batches=start,
        )
        return batches.map(_step_inputs)

    labeled = stream(data.train, config.train_split, config.batch_size, config.seed)
    if data.unlabeled is not None:
        unlabeled_batch = int(config.batch_size * config.unlabel_ratio)
        unlabeled = stream(data.unlabeled, config.unlabeled_split, unlabeled_batch, config.seed + 1)
        dataset = tf.data.Dataset.zip(labeled, unlabeled)
    else:
        dataset = labeled.map(lambda batch: (batch, None))
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    step_fn = make_train_step(config, model, optimizer, data.num_classes, strategy)
    writer = tf.summary.create_file_writer(os.path.join(config.model_dir, "train"))
    images_per_step = config.batch_size * (1 + config.unlabel_ratio)
    last_time, last_step = time.time(), start
    for current in range(start, steps):
        try:
            batch = next(iterator)
        except StopIteration:
            raise ValueError(_no_images_message(config, data)) from None
        parts = step_fn(batch)
        step.assign_add(1)
        ema.update(step)
        done = current + 1
        if done % config.log_every_steps == 0 or done == steps:
            values = {name: float(value) for name, value in parts.items()}
            if not np.isfinite(values["loss"]):
                raise FloatingPointError(f"loss became {values['loss']} at step {done}; lower the learning rate")
            now = time.time()
            rate = (done - last_step) * images_per_step / max(now - last_time, 1e-9)
            learning_rate = float(optimizer.learning_rate)
            eta = (steps - done) * images_per_step / max(rate, 1e-9)
            print(
                f"step {done}/{steps} | {rate:.1f} img/s | {_format_metrics(values)} | "
                f"lr {learning_rate:.5f} | ETA {_format_duration(eta)}",
                file=sys.stderr,
                flush=True,
            )
            with writer.as_default(step=done):
                for name, value in values.items():
                    tf.summary.scalar(f"loss/{name}", value)
                tf.summary.scalar("learning_rate", learning_rate)
                tf.summary.scalar("images_per_second", rate)
            last_time, last_step = now, done
        if done % config.checkpoint_every_steps == 0 or done == steps:
            manager.save(checkpoint_number=done)
    writer.flush()


def _no_images_message(config: TrainConfig, data: Data) -> str:
    """The streams repeat forever, so running out means an epoch yielded nothing."""
    streams = [("--dataset", data.train)]
    if data.unlabeled is not None:
        streams.append(("--unlabeled_dataset", data.unlabeled))
    described = "; ".join(
        f"{flag} {source.spec!r} ({int(source.skipped_images.numpy())} undecodable images skipped)"
        for flag, source in streams
    )
    return f"the training data yields no images: {described}"


def _step_inputs(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """What a step needs: ids and other strings stay on the host (XLA has no strings)."""
    return {key: batch[key] for key in ("image", "label", "probabilities") if key in batch}


def make_train_step(config: TrainConfig, model, optimizer, num_classes: int, strategy):
    regularized = [v for v in model.trainable_variables if not _is_batch_norm(v)]
    unlabeled_batch = int(config.batch_size * config.unlabel_ratio)

    def gradients_and_losses(labeled, unlabeled):
        with tf.GradientTape() as tape:
            if unlabeled is not None:
                # One forward pass over both so BatchNorm sees the joint batch, as in the reference.
                images = tf.concat([labeled["image"], unlabeled["image"]], axis=0)
                logits = model(images, training=True)
                labeled_logits = logits[: tf.shape(labeled["image"])[0]]
                unlabeled_logits = logits[tf.shape(labeled["image"])[0] :]
                targets = losses.pseudo_label_targets(unlabeled, num_classes, config.label_type)
            else:
                labeled_logits = model(labeled["image"], training=True)
                unlabeled_logits = targets = None
            parts = losses.noisy_student_loss(
                labeled_logits,
                labeled["label"],
                num_classes=num_classes,
                global_batch_size=config.batch_size,
                label_smoothing=config.label_smoothing,
                unlabeled_logits=unlabeled_logits,
                unlabeled_targets=targets,
                global_unlabeled_batch_size=unlabeled_batch,
                unlabel_ratio=config.unlabel_ratio,
                regularized=regularized,
                weight_decay=config.weight_decay / strategy.num_replicas_in_sync,
            )
            loss = parts["loss"]
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                loss = optimizer.scale_loss(loss)
        return tape.gradient(loss, model.trainable_variables), parts

    # XLA compiles the forward and backward pass; the update stays outside so
    # that cross-replica gradient reduction works under every strategy.
    compiled = tf.function(gradients_and_losses, jit_compile=config.jit_compile)

    def replica_step(labeled, unlabeled):
        gradients, parts = compiled(labeled, unlabeled)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return parts

    @tf.function
    def step(batch):
        labeled, unlabeled = batch
        parts = strategy.run(replica_step, args=(labeled, unlabeled))
        return {name: strategy.reduce("SUM", value, axis=None) for name, value in parts.items()}

    return step


def _is_batch_norm(variable) -> bool:
    # Reference: weight decay on every trainable variable except BatchNorm's.
    return "_bn/" in variable.path or variable.path.endswith("_bn")


def initialize_from(model: keras.Model, init_from: str, model_config: scaling.ModelConfig) -> None:
    """Copies weights from Keras's ImageNet EfficientNet or from one of our exports.

    The classifier is skipped when the number of classes differs (fine-tuning
    on a new label set); any other shape mismatch is an error.
    """
    if init_from == "keras":
        from efficientnet.model.keras_weights import load_keras_applications_weights

        variant = model_config.name.split("-")[-1].upper()
        application = getattr(keras.applications, f"EfficientNet{variant}", None)
        if application is None:
            raise ValueError(f"--init_from=keras: keras.applications has no EfficientNet{variant}")
        source = application(
            weights="imagenet",
            classifier_activation=None,
            input_shape=(model_config.resolution, model_config.resolution, 3),
        )
        load_keras_applications_weights(model, source, include_classifier=model_config.num_classes == 1000)
        return
    source, _ = export.load_export(init_from)
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"--init_from={init_from}: layer {layer.name!r} is missing there") from None
        shapes = [tuple(w.shape) for w in layer.weights], [tuple(w.shape) for w in other.weights]
        if shapes[0] != shapes[1]:
            if layer.name == "logits":
                continue
            raise ValueError(f"--init_from={init_from}: layer {layer.name!r} has shapes {shapes[1]}, need {shapes[0]}")
        layer.set_weights(other.get_weights())


def _format_metrics(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in values.items())


def _format_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
