"""Name-keyed registries for models, dataset sources, augment ops and evaluators.

Every pluggable concept in the project (a model size, a dataset source, a
RandAugment op, a corruption, an evaluator) is looked up by a string that a
user types on the command line or in a config. One small class gives all of
them the same guarantees: registering a name twice is a bug and fails loudly, and an unknown name
fails with the list of valid ones so the user can fix the typo.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """An unknown registry name; the message lists the valid names."""


class Registry(Generic[T]):
    """A mapping from names to entries that refuses duplicates.

    Args:
      kind: What the entries are ("model", "dataset source", ...); used in
        error messages only.

    Example:
      >>> OPS = Registry("augment op")
      >>> @OPS.register("Invert")
      ... def invert(image, magnitude): ...
      >>> OPS.get("Invert")
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Registers `entry` under `name`; a second registration is an error."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""
        return lambda entry: self.add(name, entry)

    def get(self, name: str) -> T:
        """Returns the entry for `name`, or raises naming the valid choices."""
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: Any) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
