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
