"""Teacher logits → the probabilities written into pseudo-label records.

Noisy Student trains the student on soft targets softmax(logits / T) with
T = 1 (docs/noisy_student.md#soft-and-hard-targets); soft targets beat hard ones on out-of-domain
unlabeled data, hard (one-hot) ones are kept as an option for ablations.
Filtering and balancing always use the soft confidence, whatever is written.
"""

from __future__ import annotations

import numpy as np

from efficientnet.data import records
from efficientnet.model.inference import softmax

DEFAULT_TEMPERATURE = 1.0  # docs/noisy_student.md#soft-and-hard-targets


def soft_probabilities(logits: np.ndarray, temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """softmax(logits / temperature) over the last axis, float32 (overflow-safe: `softmax`)."""
    if temperature <= 0:
        raise ValueError(f"--temperature must be > 0, got {temperature}")
    return softmax(np.asarray(logits, np.float64) / temperature)


def hard_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """One-hot of the argmax (the first index on ties, like np.argmax)."""
    probabilities = np.asarray(probabilities)
    one_hot = np.zeros(probabilities.shape, np.float32)
    np.put_along_axis(one_hot, np.argmax(probabilities, axis=-1)[..., None], 1.0, axis=-1)
    return one_hot


def written_probabilities(probabilities: np.ndarray, label_type: str) -> np.ndarray:
    """What a record's `probabilities` feature holds for `--label_type`."""
    records.check_label_type(label_type)
    if label_type == "hard":
        return hard_probabilities(probabilities)
    return np.asarray(probabilities, np.float32)
