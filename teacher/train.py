"""Train an EfficientNet teacher on labeled data with the reference recipe.

  python -m teacher.train --model_dir=runs/teacher --dataset=digits \
      --model=efficientnet-b0 --width=0.25 --depth=0.25 --resolution=32 --small_images \
      --batch_size=64 --epochs=60 --random_flip=false

  python -m teacher.train --model_dir=gs://bucket/b0 --dataset=tfds:imagenet2012 \
      --data_dir=gs://bucket/tfds --eval_split=validation --batch_size=4096 --tpu=my-tpu \
      --precision=bfloat16

Killed runs resume from their last checkpoint when rerun with the same flags.
The EMA model is exported to MODEL_DIR/export/{model.keras,model.json}.
"""

from __future__ import annotations

from efficientnet.train import config_flags
from efficientnet.train.loop import train
from efficientnet.util import cli

config_flags.define_flags(exclude=config_flags.STUDENT_ONLY)


def main(argv):
    del argv
    config = config_flags.config_from_flags(exclude=config_flags.STUDENT_ONLY)
    train(config)


if __name__ == "__main__":
    cli.run(main)
