"""The two TFRecord formats the project reads, and the pseudo-label targets.

Labeled images (the ImageNet format of the reference TPU code):
  image/encoded       bytes   JPEG/PNG
  image/class/label   int64   class index, used as stored (0-based)

Pseudo-labeled images (the Noisy Student reference format), written by the
labeling job and read back as a `tfrecord:` source:
  image/encoded  bytes     the image as read (original JPEG/PNG bytes), or PNG
                           for sources that only hold decoded pixels
  probabilities  float[C]  the teacher's soft (or one-hot) distribution
  label          int64     argmax of probabilities
  prob           float     max of probabilities

See docs/noisy_student.md#record-formats. `LABEL_TYPES` names what a student
trains on: `soft`, the teacher's probabilities, or `hard`, their argmax as a
one-hot target (docs/noisy_student.md#soft-and-hard-targets).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

LABEL_TYPES = ("soft", "hard")

IMAGENET_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}
PSEUDOLABEL_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "probabilities": tf.io.VarLenFeature(tf.float32),
    "label": tf.io.FixedLenFeature([], tf.int64),
    "prob": tf.io.FixedLenFeature([], tf.float32),
}


def check_label_type(label_type: str) -> None:
    if label_type not in LABEL_TYPES:
        raise ValueError(f"--label_type must be one of {list(LABEL_TYPES)}, got {label_type!r}")


def encode_pseudo_label(encoded_image: bytes, probabilities: np.ndarray) -> bytes:
    """A serialized pseudo-label `tf.train.Example`; label and prob are derived,
    never passed, so they cannot disagree with the probabilities.

    Serialized deterministically (features in key order): protobuf writes a
    map in an order of its own that differs between processes, so the same
    record labeled by two workers would otherwise have different bytes."""
    probabilities = np.asarray(probabilities, np.float32)
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded_image])),
        "probabilities": tf.train.Feature(float_list=tf.train.FloatList(value=probabilities.tolist())),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(np.argmax(probabilities))])),
        "prob": tf.train.Feature(float_list=tf.train.FloatList(value=[float(np.max(probabilities))])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def decode_pseudo_label(serialized: bytes) -> dict:
    """A pseudo-label record's features as Python values (for tests and inspection)."""
    feature = tf.train.Example.FromString(serialized).features.feature
    return {
        "image/encoded": feature["image/encoded"].bytes_list.value[0],
        "probabilities": np.array(feature["probabilities"].float_list.value, np.float32),
        "label": feature["label"].int64_list.value[0],
        "prob": feature["prob"].float_list.value[0],
    }


def encode_labeled(encoded_image: bytes, label: int) -> bytes:
    """A serialized ImageNet-format `tf.train.Example`."""
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded_image])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
