"""The steps of an iteration and `rounds.json`, the record of what ran.

A step is data, `Step(round, role)`: the iteration builds it, the manifest
stores its round and role as fields, and the report reads them back as they
are (no step name is ever parsed). Each role has one output directory name in
the work directory, defined here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import tensorflow as tf

from efficientnet.util import fileio

MANIFEST_FILE = "rounds.json"

# The data an iteration reads, by role; labeled and unlabeled are required.
DATA_ROLES = ("labeled", "unlabeled", "validation", "test")

TEACHER = "teacher"
PSEUDOLABEL = "pseudolabel"
STUDENT = "student"
STUDENT_NO_NOISE = "student_no_noise"
# The bound a student is measured against where true labels of the unlabeled
# data exist: the round-1 student's run with those labels as its targets.
ORACLE = "oracle"
# Role → the suffix of its directory in the work directory (round1-pseudo, …).
DIRECTORY_SUFFIX = {
    TEACHER: "teacher",
    PSEUDOLABEL: "pseudo",
    STUDENT: "student",
    STUDENT_NO_NOISE: "student-no-noise",
    ORACLE: "oracle",
}
MODEL_ROLES = (TEACHER, STUDENT, STUDENT_NO_NOISE, ORACLE)


@dataclasses.dataclass(frozen=True, order=True)
class Step:
    """One step of the iteration: round 0 trains the teacher; round k ≥ 1
    labels with round k−1's model and trains student k (and its ablation)."""

    round: int
    role: str

    def __post_init__(self):
        if self.role not in DIRECTORY_SUFFIX:
            raise ValueError(f"unknown step role {self.role!r}; valid: {sorted(DIRECTORY_SUFFIX)}")

    @property
    def name(self) -> str:
        """How progress lines and `rounds.json` name the step, e.g. `round1/student`."""
        return f"round{self.round}/{self.role}"

    def directory(self, work_dir: str) -> str:
        return os.path.join(work_dir, f"round{self.round}-{DIRECTORY_SUFFIX[self.role]}")

    @property
    def trains_a_model(self) -> bool:
        return self.role in MODEL_ROLES


class Manifest:
    """`rounds.json`: what ran, with which settings, and what came out.

    Replaced atomically after every change, so a killed run leaves the
    previous complete manifest.
    """

    def __init__(self, work_dir: str):
        self.path = os.path.join(work_dir, MANIFEST_FILE)
        self.steps: dict[str, Any] = {}
        self.holdout: dict[str, Any] | None = None  # the validation split made from the labeled data, if any
        if tf.io.gfile.exists(self.path):
            content = fileio.read_json(self.path)
            if not isinstance(content, dict) or not isinstance(content.get("steps"), dict):
                raise ValueError(
                    f"{self.path} is not a rounds manifest (no 'steps' object); move it away to start over"
                )
            self.steps = content["steps"]
            self.holdout = content.get("validation_holdout")

    def done(self, step: Step, settings: dict[str, Any], marker: str) -> bool:
        """Whether `step` finished with these settings and its output (`marker`) exists."""
        entry = self.steps.get(step.name)
        if not entry or entry.get("status") != "done" or not tf.io.gfile.exists(marker):
            return False
        if entry.get("settings") != settings:
            raise ValueError(
                f"{self.path}: step {step.name} was done with other settings; use a new --work_dir to change them"
            )
        return True

    def record(self, step: Step, entry: dict[str, Any]) -> None:
        self.steps[step.name] = {"round": step.round, "role": step.role} | entry
        self._write()

    def record_holdout(self, summary: dict[str, Any]) -> None:
        self.holdout = summary
        self._write()

    def _write(self) -> None:
        content = {"steps": self.steps} | ({"validation_holdout": self.holdout} if self.holdout else {})
        fileio.write_json(self.path, content)

    def finished(self, last_round: int, roles: tuple[str, ...]) -> list[tuple[Step, dict[str, Any]]]:
        """Finished steps of the given roles up to `last_round`, in (round, role) order."""
        found = []
        for entry in self.steps.values():
            step = Step(entry["round"], entry["role"])
            if step.role in roles and step.round <= last_round and entry.get("status") == "done":
                found.append((step, entry))
        return sorted(found, key=lambda pair: pair[0])
