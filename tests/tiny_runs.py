"""The tiny digits training run of the suite's teacher, shared by conftest.py and test_training.py.

One run serves both: tests/test_training.py checks what it wrote, and the
session `teacher` fixture hands its export to the labeling and fault tests.
"""

from efficientnet.train.config import TrainConfig

TINY = dict(width=0.25, depth=0.25, resolution=32, small_images=True)
TEACHER_NOISE = dict(randaugment_layers=1, randaugment_magnitude=5)


def tiny_config(model_dir, **overrides) -> TrainConfig:
    values = dict(
        model_dir=str(model_dir),
        dataset="digits",
        batch_size=32,
        train_steps=100,
        warmup_epochs=1,
        random_flip=False,
        checkpoint_every_steps=50,
        log_every_steps=50,
        **TINY,
    )
    return TrainConfig(**(values | overrides))


def teacher_config(model_dir) -> TrainConfig:
    return tiny_config(model_dir, **TEACHER_NOISE)


# The multi-replica comparisons (tests/test_distributed.py): 10 steps without warm-up, so that
# the weights move; no dropout or stochastic depth, whose masks each replica draws for its own
# slice and so differ from a 1-replica run's; synchronized batch norm, so that every replica
# normalises with the statistics of the whole global batch, as one replica does.
REPLICATED = dict(
    batch_size=8,
    train_steps=10,
    warmup_epochs=0,
    base_learning_rate=0.1,
    dropout_rate=0.0,
    drop_connect_rate=0.0,
    sync_batch_norm=True,
    deterministic=True,
    eval_split="validation",
    checkpoint_every_steps=5,
    log_every_steps=5,
)


def replicated_config(model_dir, **overrides) -> TrainConfig:
    return tiny_config(model_dir, **(REPLICATED | overrides))
