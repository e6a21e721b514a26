"""The one training loop: teacher and student both configure it.

A teacher run is `train(TrainConfig(...))`. A student run is the same call
with an unlabeled (pseudo-labeled) stream, an `unlabel_ratio` and noise
switched on: nothing here is teacher- or student-specific.

Resume order, explicit (`train`, `TrainingRun.start`): build the strategy
(before anything else starts TensorFlow), read `config.json` (refuse a
model_dir holding a different run), build model and optimizer under the
strategy, restore the latest checkpoint (model, optimizer, EMA,
random-generator states, step), then rebuild the input pipeline positioned at
that step (`TrainingRun.run_steps`). Because the pipeline is deterministic
under the seed, a run killed at any moment and restarted ends with the same
step count and the same weights as an uninterrupted one, up to float
reduction order. SIGTERM (a preempted VM) saves a checkpoint after the
current step and stops, so the rerun loses nothing; the chief holds the
model_dir's run lock while it trains (docs/training.md#stopping-resuming-and-sharing-a-directory).

Several replicas or workers (docs/training.md#across-replicas) each read
their own files, or with `--input_sharding=exact` train on the same global
batches as one replica would; only the chief writes:
`config.json`, checkpoints, summaries and the export. Saving a checkpoint
is a collective operation under MultiWorkerMirroredStrategy, so the other
workers save too, into a private temporary directory outside `model_dir`
that is removed when their run ends; every worker restores from the chief's
checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile
from typing import Any

import keras
import tensorflow as tf
from absl import logging

from efficientnet.data import input_pipeline, preprocessing, randaugment, service
from efficientnet.data.datasets import open_source
from efficientnet.data.source import EVAL, TRAIN, Source
from efficientnet.model import export, scaling
from efficientnet.model.evaluation import evaluate
from efficientnet.model.inference import Predictor
from efficientnet.model.init_from import initialize_from
from efficientnet.model.network import build_from_config
from efficientnet.train import losses
from efficientnet.train.config import TrainConfig, check_resumable
from efficientnet.train.distribute import check_batch_split, is_chief, make_strategy, peer_lost, set_precision
from efficientnet.train.ema import EMA
from efficientnet.train.schedules import LearningRateSchedule, ScheduleConfig
from efficientnet.util import fileio, runlock, stopping
from efficientnet.util.cli import Stopped, one_line
from efficientnet.util.progress import StepProgress, format_metrics

CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "train"
SCRATCH_PREFIX = "efficientnet-worker-checkpoints-"  # a non-chief worker's temporary directory


@dataclasses.dataclass
class Data:
    """Sources opened once per run, with the splits they are read at."""

    train: Source
    eval: Source
    unlabeled: Source | None
    num_classes: int
    num_train_examples: int
    train_split: str | None
    eval_split: str | None


def open_data(config: TrainConfig) -> Data:
    """Opens and checks every source of a run before any model is built.

    Each source must yield at least one image (`Source.require_images`), and
    the labeled ones must have labels.
    """
    train = open_source(config.dataset, data_dir=config.data_dir)
    evaluation = open_source(config.eval_dataset, data_dir=config.data_dir) if config.eval_dataset else train
    unlabeled = open_source(config.unlabeled_dataset, data_dir=config.data_dir) if config.unlabeled_dataset else None
    train_split = train.resolve_split(config.train_split, TRAIN)
    eval_split = evaluation.resolve_split(config.eval_split, EVAL)
    for flag, source in (("--dataset", train), ("--eval_dataset", evaluation)):
        if not source.labeled:
            raise ValueError(
                f"{flag} {source.spec!r} has no labels (images without class subfolders); "
                "labeled data needs one subfolder per class"
            )
    train.require_images(train_split)
    evaluation.require_images(eval_split)
    if unlabeled is not None:
        unlabeled.require_images(config.unlabeled_split)
    num_classes = config.num_classes or train.num_classes
    if num_classes is None:
        raise ValueError(f"cannot tell the number of classes of {config.dataset!r}; pass --num_classes")
    for name, source in (("--eval_dataset", evaluation), ("--unlabeled_dataset", unlabeled)):
        if source is not None and source.num_classes not in (None, num_classes):
            raise ValueError(
                f"{name} {source.spec!r} has {source.num_classes} classes but the training data has {num_classes}"
            )
    num_train_examples = config.num_train_examples or train.num_examples(train_split)
    if num_train_examples is None and config.train_steps is None:
        raise ValueError(f"cannot count the examples of {config.dataset!r}; pass --train_steps or --num_train_examples")
    num_train_examples = num_train_examples or config.train_steps * config.batch_size
    return Data(train, evaluation, unlabeled, num_classes, num_train_examples, train_split, eval_split)


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


def train(config: TrainConfig, data: Data | None = None) -> dict[str, Any]:
    """Trains (or resumes) a run and exports its EMA model; returns final metrics.

    `data` is `open_data(config)` when the caller has already opened the
    sources to check them (opening a large image folder lists every file);
    such a caller builds the strategy first (`make_strategy`, which explains
    why).

    The chief evaluates and exports alone, outside the strategy, after the
    last checkpoint; the other workers return {} then. Evaluation has no
    collective operation (each worker's copy of a variable is the same and is
    read locally), so it cannot wait on workers that have left; evaluating
    on all workers together would only repeat the same sums.
    """
    config.validate()
    strategy = make_strategy(config.strategy, config.tpu)
    check_batch_split("--batch_size", config.batch_size, strategy.num_replicas_in_sync)
    if config.unlabeled_dataset is not None:
        check_batch_split(
            "--unlabel_ratio × --batch_size", config.unlabeled_batch_size(), strategy.num_replicas_in_sync
        )
    check_resumable(config.model_dir, config)
    data = data or open_data(config)
    if config.data_service:
        service.check_answers(config.data_service)
    chief = is_chief(strategy)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if chief:
        fileio.check_writable_dir(config.model_dir, "--model_dir")
    lock = runlock.hold(config.model_dir, "--model_dir") if chief else contextlib.nullcontext()
    # A checkpoint is a collective under several workers: one worker told to
    # stop cannot save alone, so there a signal ends the worker as before
    # (its peers stop with `peer_lost`) and the run resumes from the last
    # periodic checkpoint.
    signals = contextlib.nullcontext(stopping.StopRequest()) if multi_worker else stopping.requests()
    with lock, signals as stop:
        run = TrainingRun.start(config, data, strategy)
        try:
            run.run_steps(stop)
        except tf.errors.UnavailableError as error:
            if not multi_worker:
                raise
            raise peer_lost(error, os.path.join(config.model_dir, CHECKPOINT_DIR)) from None
        finally:
            run.close()
        if stop.requested:
            raise Stopped(
                f"stopped by {stop.name} after the last step, before the export (the checkpoint is saved); "
                "rerun the same command to evaluate and export"
            )
        return run.export() if run.chief else {}


@dataclasses.dataclass
class TrainingRun:
    """The state of one run: what it trains, with what, and how far it got."""

    config: TrainConfig
    data: Data
    model_config: scaling.ModelConfig
    strategy: tf.distribute.Strategy
    model: keras.Model
    optimizer: keras.optimizers.Optimizer
    ema: EMA
    step: tf.Variable
    checkpoints: tf.train.CheckpointManager
    total_steps: int
    chief: bool
    scratch_dir: str | None  # a non-chief worker's checkpoints, removed by `close`

    @classmethod
    def start(cls, config: TrainConfig, data: Data, strategy: tf.distribute.Strategy) -> TrainingRun:
        """Builds everything under the strategy, then resumes or initialises."""
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(config.seed)
        set_precision(config.precision)
        model_config = dataclasses.replace(
            scaling.model_config(config.model, data.num_classes, **config.model_overrides()),
            sync_batch_norm=config.sync_batch_norm,
        )
        steps = total_steps(config, data)
        chief = is_chief(strategy)
        if chief:
            fileio.write_json(os.path.join(config.model_dir, fileio.RUN_CONFIG_FILE), config.to_dict())
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
        chief_dir = os.path.join(config.model_dir, CHECKPOINT_DIR)
        scratch_dir = None if chief else tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
        checkpoints = tf.train.CheckpointManager(checkpoint, scratch_dir or chief_dir, max_to_keep=3)
        resumed = restore_newest_readable(checkpoint, chief_dir)
        if resumed:
            logging.info("resumed from %s at step %d", resumed, int(step.numpy()))
        elif config.init_from:
            initialize_from(model, config.init_from, model_config)
            ema.reset()
        return cls(
            config, data, model_config, strategy, model, optimizer, ema, step, checkpoints, steps, chief, scratch_dir
        )

    def batches(self, start: int, input_context: tf.distribute.InputContext) -> tf.data.Dataset:
        """(labeled, unlabeled or None) per-replica batches from step `start` on.

        `input_context` says which worker this is and which replicas it feeds;
        `--input_sharding` how the workers share the data, and
        `--data_service` where the batches are made (`input_pipeline.train_dataset`).
        """
        config, data = self.config, self.data
        augment = make_augment(config, self.model_config.resolution)
        if input_context.num_input_pipelines > 1:
            logging.info(
                "input of worker %d of %d: --input_sharding=%s%s",
                input_context.input_pipeline_id,
                input_context.num_input_pipelines,
                config.input_sharding,
                " (reads its own files only)" if config.input_sharding == "files" else " (reads every record)",
            )

        def stream(source, split, batch_size, seed):
            batches = input_pipeline.train_dataset(
                source,
                split,
                batch_size=batch_size,
                resolution=self.model_config.resolution,
                seed=seed,
                random_flip=config.random_flip,
                augment=augment,
                cache=config.cache,
                skip_batches=start,
                input_context=input_context,
                input_sharding=config.input_sharding,
            ).map(_step_inputs)
            if config.data_service:
                batches = service.distribute(batches, config.data_service)
            return batches

        labeled = stream(data.train, data.train_split, config.batch_size, config.seed)
        if data.unlabeled is None:
            return labeled.map(lambda batch: (batch, None))
        unlabeled = stream(data.unlabeled, config.unlabeled_split, config.unlabeled_batch_size(), config.seed + 1)
        return tf.data.Dataset.zip(labeled, unlabeled)

    def run_steps(self, stop: stopping.StopRequest | None = None) -> None:
        """The step loop: distributed train step, EMA, progress lines, checkpoints.

        When `stop` is requested (SIGTERM: a preempted VM has seconds left) the
        loop saves a checkpoint after the current step and raises `Stopped`;
        the rerun resumes at that step exactly, as after any checkpoint.
        """
        stop = stop or stopping.StopRequest()
        config, start, steps = self.config, int(self.step.numpy()), self.total_steps
        if start >= steps:
            return
        iterator = iter(self.strategy.distribute_datasets_from_function(lambda context: self.batches(start, context)))
        step_fn = make_train_step(config, self.model, self.optimizer, self.data.num_classes, self.strategy)
        progress = StepProgress(
            steps,
            start,
            config.batch_size * (1 + config.unlabel_ratio),
            os.path.join(config.model_dir, SUMMARY_DIR) if self.chief else None,
        )
        for done in range(start + 1, steps + 1):
            # The streams repeat forever, and open_data checked that each yields an image.
            parts = step_fn(next(iterator))
            self.step.assign_add(1)
            self.ema.update(self.step)
            if done % config.log_every_steps == 0 or done == steps:
                values = {name: float(value) for name, value in parts.items()}  # reading them waits for the step
                if not math.isfinite(values["loss"]):
                    raise FloatingPointError(f"loss became {values['loss']} at step {done}; lower the learning rate")
                progress.report(done, values, float(self.optimizer.learning_rate))
            stopping_now = stop.requested and done < steps
            if done % config.checkpoint_every_steps == 0 or done == steps or stopping_now:
                saved = self.checkpoints.save(checkpoint_number=done)  # on every worker: a collective
            if stopping_now:
                progress.close()
                raise Stopped(
                    f"stopped by {stop.name} at step {done}/{steps}; saved {saved}; "
                    "rerun the same command to resume from there"
                )
        progress.close()

    def close(self) -> None:
        """Removes a non-chief worker's scratch checkpoints."""
        if self.scratch_dir:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def export(self) -> dict[str, Any]:
        """Evaluates the EMA weights on the eval split and exports them, in float32.

        A run trained under a mixed policy exports a float32 copy (its
        variables are float32 already), so an export loads and predicts the
        same whatever precision trained it, on hardware without bfloat16 units
        too, and its metrics are those of the model it holds.
        """
        config, data = self.config, self.data
        export_dir = export.export_dir(config.model_dir)
        with self.ema.swapped():
            model = self.model
            if model.dtype_policy.name != "float32":
                model = build_from_config(self.model_config, policy="float32")
                model.set_weights(self.model.get_weights())
            predictor = Predictor(model, self.model_config.resolution)
            metrics = evaluate(predictor, data.eval, data.eval_split, config.batch_size)
            metadata = {
                "dataset": config.dataset,
                "eval_dataset": config.eval_dataset or config.dataset,
                "eval_split": data.eval_split,
                "steps": self.total_steps,
                "metrics": metrics,
                "role": "student" if config.unlabeled_dataset else "teacher",
            }
            class_names = list(data.train.class_names) if data.train.class_names else None
            export.save_export(export_dir, model, self.model_config, class_names=class_names, extra=metadata)
        logging.info("exported %s: %s", export_dir, format_metrics(metrics))
        return metrics


def _step_inputs(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """What a step needs: ids and other strings stay on the host (XLA has no strings)."""
    return {key: batch[key] for key in ("image", "label", "probabilities") if key in batch}


def make_train_step(config: TrainConfig, model, optimizer, num_classes: int, strategy):
    regularized = [v for v in model.trainable_variables if not _is_batch_norm(v)]
    unlabeled_batch = config.unlabeled_batch_size()
    statistics = [
        variable
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for variable in (layer.moving_mean, layer.moving_variance)
    ]

    def gradients_and_losses(labeled, unlabeled):
        # Batches arrive as uint8 after RandAugment, float32 otherwise (input_pipeline.train_dataset).
        labeled_images = tf.cast(labeled["image"], tf.float32)
        with tf.GradientTape() as tape:
            if unlabeled is not None:
                # One forward pass over both so BatchNorm sees the joint batch, as in the reference.
                images = tf.concat([labeled_images, tf.cast(unlabeled["image"], tf.float32)], axis=0)
                logits = model(images, training=True)
                labeled_logits = logits[: tf.shape(labeled_images)[0]]
                unlabeled_logits = logits[tf.shape(labeled_images)[0] :]
                targets = losses.pseudo_label_targets(unlabeled, num_classes, config.label_type)
            else:
                labeled_logits = model(labeled_images, training=True)
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

    # With --jit_compile, XLA compiles the forward and backward pass as a
    # nested function; the update stays outside so that cross-replica gradient
    # reduction works under every strategy. Without it nothing is nested:
    # MirroredStrategy cannot reduce across replicas inside a nested function,
    # which synchronized batch norm does (TrainConfig keeps the two apart).
    # No Python control flow here depends on a tensor, so AutoGraph is off: it
    # would only spend a second per run converting the model's code.
    compiled = (
        tf.function(gradients_and_losses, jit_compile=True, autograph=False)
        if config.jit_compile
        else gradients_and_losses
    )

    def replica_step(labeled, unlabeled):
        gradients, parts = compiled(labeled, unlabeled)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        if strategy.num_replicas_in_sync > 1:
            average_across_replicas(statistics)
        return parts

    @tf.function(autograph=False)
    def step(batch):
        labeled, unlabeled = batch
        parts = strategy.run(replica_step, args=(labeled, unlabeled))
        return {name: strategy.reduce("SUM", value, axis=None) for name, value in parts.items()}

    return step


def restore_newest_readable(checkpoint: tf.train.Checkpoint, directory: str) -> str | None:
    """Restores the newest checkpoint in `directory` that can be read; returns its prefix (None: none there).

    A run killed while a disk filled or a copy was cut short can leave its
    newest checkpoint truncated; the previous ones (the manager keeps 3) are
    intact, so the run resumes from the newest of those with one warning
    naming both, and later overwrites the broken one when it reaches that
    step again. Every checkpoint holds every variable, so a restore that
    failed half-way is overwritten whole by the next one.
    """
    state = tf.train.get_checkpoint_state(directory)
    prefixes = list(state.all_model_checkpoint_paths) if state else []
    unreadable = []
    for prefix in reversed(prefixes):
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
        except (tf.errors.OpError, IndexError, ValueError, AssertionError) as error:
            unreadable.append(f"{prefix} ({one_line(str(error)) or type(error).__name__})")
            continue
        if unreadable:
            logging.warning("cannot read checkpoint %s; resuming from %s instead", "; ".join(unreadable), prefix)
        return prefix
    if unreadable:
        raise ValueError(
            f"no checkpoint in {directory} can be read: {'; '.join(unreadable)}; move {directory} away to start over"
        )
    return None


def average_across_replicas(variables: list) -> None:
    """Sets every replica's copy of `variables` to their mean over replicas.

    Each replica updates its batch-norm moving statistics with its own batch
    statistics, and Keras leaves the copies to drift apart (only the first
    replica's would be checkpointed and exported). Averaging the updated
    copies after each step is the moving-average update with the replicas'
    mean batch statistics: the global batch's mean, and, without
    `--sync_batch_norm`, the mean of the replicas' variances.
    """
    context = tf.distribute.get_replica_context()
    # This replica's copies; tf.identity places them on its device, which the
    # multi-worker reduction needs (a plain read has none).
    local = [tf.identity(variable) for variable in variables]
    averages = context.all_reduce(tf.distribute.ReduceOp.MEAN, local)
    for variable, average in zip(variables, averages, strict=True):
        variable.assign(average)


def _is_batch_norm(variable) -> bool:
    # Reference: weight decay on every trainable variable except BatchNorm's.
    return "_bn/" in variable.path or variable.path.endswith("_bn")
