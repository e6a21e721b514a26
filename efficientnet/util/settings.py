"""Settings declared once, as dataclass fields; their flags and checks are derived.

A config class (`TrainConfig`, `LabelingConfig`) declares each setting as
`name: type = setting(default, help, choices=...)`. Everything else about it
comes from that one line, so a flag, a config-file key and a check cannot
disagree:

- `define_flags(cls)`: one absl flag per setting, typed by its annotation, with
  its default and help; `from_flags(cls)` reads them back into a `cls`.
- `check_values(cls, values, where)`: a config file's section refused, naming
  the key's path (`rounds[1].randaugment_magnitud`), for a key that is no
  setting (with the nearest one) or a value of the wrong JSON type.
- `check_choices(config)`: a value outside its setting's `choices`, named as
  the flag (`--optimizer must be one of [...]`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
from collections.abc import Iterable
from typing import Any, Union, get_args, get_origin, get_type_hints

from absl import flags

# How a type check names the JSON types it expected, in this order.
_TYPE_NAMES = {
    bool: "a boolean (true or false)",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
}


def setting(default: Any = dataclasses.MISSING, help: str = "", *, choices: Iterable[str] | None = None) -> Any:
    """A dataclass field with its help text (and valid values); without a default, the setting is required."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": tuple(choices or ())})


def define_flags(cls: type, exclude: Iterable[str] = (), defaults: dict[str, Any] | None = None) -> None:
    """Defines one absl flag per setting of `cls` not in `exclude`; `defaults` replace the class's.

    A setting of one of several types (`int | str`) is a string flag, which the
    class's own validation parses. Choices are checked by `check_choices`, so a
    bad value is the one-line error every other bad setting is.
    """
    kinds = _kinds(cls)
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        default = (defaults or {}).get(field.name, None if field.default is dataclasses.MISSING else field.default)
        own = kinds[field.name] - {type(None)}
        kind = next(iter(own)) if len(own) == 1 else str
        define = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float}.get(
            kind, flags.DEFINE_string
        )
        define(field.name, default, field.metadata["help"])


def from_flags(cls: type, values: dict[str, Any] | None = None, exclude: Iterable[str] = ()) -> Any:
    """A `cls` from its flags: a flag given on the command line wins over `values`, which win over its default.

    `values` (a config file's, say) must have passed `check_values`. An empty
    string flag means None, so that `--train_split=` unsets a setting.
    """
    values = dict(values or {})
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        flag = flags.FLAGS[field.name]
        if flag.present or field.name not in values:
            values[field.name] = None if flag.value == "" else flag.value
    return cls(**values)


def from_dict(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """A `cls` from a config file's values, after `check_values`."""
    check_values(cls, values, where)
    return cls(**values)


def check_values(cls: type, values: dict[str, Any], where: str = "") -> None:
    """Raises ValueError naming `where.key` for the first key of `values` that is no
    setting of `cls`, or whose value is not of its JSON type.

    JSON has one number type, so an integer is a valid float; a float is no
    integer and a boolean is neither; null is valid where the type is optional.
    """
    kinds = _kinds(cls)
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in kinds:
            raise ValueError(unknown_setting(path, kinds))
        allowed = kinds[key] | ({int} if float in kinds[key] else set())
        if type(value) not in allowed:
            expected = " or ".join(_TYPE_NAMES[kind] for kind in _TYPE_NAMES if kind in kinds[key])
            raise ValueError(f"{path}: expected {expected}, got {value!r}")


def check_choices(config: Any) -> None:
    """Raises ValueError, named as the flag, for a setting of `config` outside its choices."""
    for field in dataclasses.fields(config):
        choices = field.metadata.get("choices")
        value = getattr(config, field.name)
        if choices and value is not None and value not in choices:
            raise ValueError(f"--{field.name} must be one of {list(choices)}, got {value!r}")


def unknown_setting(path: str, valid: Iterable[str]) -> str:
    """`path: unknown setting; did you mean NEAREST?`, or the valid names when none is near."""
    valid = sorted(valid)
    nearest = difflib.get_close_matches(path.rsplit(".", 1)[-1], valid, n=1)
    hint = f"did you mean {nearest[0]}?" if nearest else f"valid: {', '.join(valid)}"
    return f"{path}: unknown setting; {hint}"


@functools.cache
def _kinds(cls: type) -> dict[str, frozenset[type]]:
    """Each setting's types, from its annotation (`float | None` → {float, NoneType})."""
    hints = get_type_hints(cls)
    kinds = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        kinds[field.name] = frozenset(get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,))
    return kinds
