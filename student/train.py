"""Train a noised student on labeled + pseudo-labeled data (docs/noisy_student.md#the-student-and-its-noise).

  python -m student.train --model_dir=runs/digits/student-1 --teacher=runs/digits/teacher \
      --dataset=digits --unlabeled_dataset='tfrecord:runs/digits/pseudo-1/pseudo-*' \
      --unlabel_ratio=3 --randaugment_layers=2 --randaugment_magnitude=5 \
      --width=0.25 --depth=0.25 --resolution=32 --small_images

Each step takes --batch_size labeled and unlabel_ratio × batch_size
pseudo-labeled images; loss = CE(labeled, label smoothing) + unlabel_ratio ·
CE(soft targets). Noise is RandAugment, dropout and stochastic depth, all on by
default; `--no_noise` switches all three off for the ablation. The student must
be at least the teacher's size unless `--allow_smaller_student`.
"""

from __future__ import annotations

from absl import flags

from efficientnet.model import export, scaling
from efficientnet.train import config_flags
from efficientnet.train.config import STUDENT_DEFAULTS, TrainConfig
from efficientnet.train.distribute import make_strategy
from efficientnet.train.loop import open_data, train
from efficientnet.util import cli

config_flags.define_flags(defaults=STUDENT_DEFAULTS)
_TEACHER = flags.DEFINE_string(
    "teacher", None, "The teacher's export (or model_dir), to check the student's size and classes."
)
_ALLOW_SMALLER = flags.DEFINE_boolean("allow_smaller_student", False, "Allow a student smaller than its teacher.")
_NO_NOISE = flags.DEFINE_boolean("no_noise", False, "Ablation: no RandAugment, dropout or stochastic depth.")
_FINETUNE_STEPS = flags.DEFINE_integer(
    "finetune_steps", 0, "After training, fine-tune this many steps on labeled data only (MODEL_DIR/finetune)."
)
_FINETUNE_RESOLUTION = flags.DEFINE_integer(
    "finetune_resolution", None, "Resolution of the fine-tune (FixRes: larger than training); default unchanged."
)


def check_teacher(student: TrainConfig, teacher_path: str, num_classes: int, *, allow_smaller: bool = False) -> None:
    """The teacher must predict the student's `num_classes`, and the student
    must be at least the teacher's size (Xie et al. 2020, §2) unless allowed."""
    teacher = export.model_config_of(export.load_metadata(teacher_path))
    if num_classes != teacher.num_classes:
        raise ValueError(
            f"the teacher {teacher_path} predicts {teacher.num_classes} classes "
            f"but --dataset {student.dataset!r} has {num_classes}"
        )
    ours = scaling.model_config(student.model, teacher.num_classes, **student.model_overrides())
    smaller = [
        f"{name} {getattr(ours, name)} < {getattr(teacher, name)}"
        for name in ("width", "depth", "resolution")
        if getattr(ours, name) < getattr(teacher, name)
    ]
    if smaller and not allow_smaller:
        raise ValueError(
            f"the student is smaller than its teacher {teacher_path} ({'; '.join(smaller)}); "
            "pass --allow_smaller_student to train it anyway"
        )


def main(argv):
    del argv
    config = config_flags.config_from_flags()
    if _NO_NOISE.value:
        config = config.without_noise()
    config.validate()
    if config.unlabeled_dataset is None:
        raise ValueError("--unlabeled_dataset is required (the pseudo-labeled records of pseudolabel.run)")
    make_strategy(config.strategy, config.tpu)  # before open_data starts TensorFlow (see make_strategy)
    data = open_data(config)  # once: the check and the run share the opened sources
    if _TEACHER.value:
        check_teacher(config, _TEACHER.value, data.num_classes, allow_smaller=_ALLOW_SMALLER.value)
    train(config, data)
    if _FINETUNE_STEPS.value:
        train(config.finetune(_FINETUNE_STEPS.value, _FINETUNE_RESOLUTION.value))


if __name__ == "__main__":
    cli.run(main)
