"""Fixtures shared by several test modules."""

import pytest


@pytest.fixture(scope="session")
def teacher(tmp_path_factory):
    """A tiny digits teacher's export directory (~20 s). Adam at a high rate:
    40 steps get it to ~35% test accuracy, so its predictions spread over
    several classes."""
    from efficientnet.train.config import TrainConfig
    from efficientnet.train.loop import train

    model_dir = tmp_path_factory.mktemp("teacher")
    train(
        TrainConfig(
            model_dir=str(model_dir),
            dataset="digits",
            width=0.25,
            depth=0.25,
            resolution=32,
            small_images=True,
            batch_size=32,
            train_steps=40,
            warmup_epochs=1,
            optimizer="adam",
            base_learning_rate=0.08,
            random_flip=False,
            checkpoint_every_steps=1000,
            log_every_steps=1000,
        )
    )
    return str(model_dir / "export")
