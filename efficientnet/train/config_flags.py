"""absl flags for `TrainConfig`, shared by `teacher.train` and `student.train`.

Flags are generated from the config's settings (`efficientnet/util/settings.py`:
name, type, default and help are declared once, in `TrainConfig`), so a new
setting is one line and the two CLIs cannot drift apart. Precedence:
`TrainConfig` defaults < `--config=FILE.json` < flags given on the command line.
"""

from __future__ import annotations

from typing import Any

from absl import flags

from efficientnet.train.config import TrainConfig
from efficientnet.util import fileio, settings

STUDENT_ONLY = ("unlabeled_dataset", "unlabeled_split", "unlabel_ratio", "label_type")

_CONFIG = flags.DEFINE_string("config", None, "JSON file of settings; flags given on the command line win.")


def define_flags(exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> None:
    """Defines one flag per `TrainConfig` setting not in `exclude`; `defaults` replace the config's."""
    settings.define_flags(TrainConfig, exclude, defaults)


def config_from_flags(exclude: tuple[str, ...] = ()) -> TrainConfig:
    """Resolves defaults < --config file < explicitly given flags."""
    values: dict[str, Any] = {}
    if _CONFIG.value:
        values = fileio.read_json(_CONFIG.value)
        try:
            settings.check_values(TrainConfig, values)
        except ValueError as error:
            raise ValueError(f"--config {_CONFIG.value}: {error}") from None
    return settings.from_flags(TrainConfig, values, exclude)
