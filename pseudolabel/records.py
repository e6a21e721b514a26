"""The pseudo-label record and the files of a labeling output directory.

Record (docs/noisy_student.md#record-formats, reference format; `efficientnet.data.datasets` reads it
back as a `tfrecord:` source, recognising it by the `probabilities` feature):
  image/encoded  bytes      the image as read (original JPEG/PNG bytes), or PNG
                            for sources that only hold decoded pixels
  probabilities  float[C]   the teacher's soft (or one-hot) distribution
  label          int64      argmax of probabilities
  prob           float      max of probabilities

Output directory:
  pseudo-SSSSS-of-NNNNN.tfrecord   the records, sharded
  stats.json                       counts, histogram, accuracy (see README.md)
  config.json                      the resolved labeling settings
  failures.jsonl                   one {"id", "error"} line per undecodable image
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

RECORD_PREFIX = "pseudo"
RECORD_SUFFIX = ".tfrecord"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
STATS_FILE = "stats.json"
CONFIG_FILE = "config.json"
FAILURES_PREFIX = "failures"
FAILURES_SUFFIX = ".jsonl"


def record_pattern(output_dir: str) -> str:
    """The glob of an output directory's records, as `tfrecord:` takes it."""
    return f"{output_dir.rstrip('/')}/{RECORD_PREFIX}-*{RECORD_SUFFIX}"


def encode_record(encoded_image: bytes, probabilities: np.ndarray) -> bytes:
    """A serialized `tf.train.Example`; label and prob are derived, never passed,
    so they cannot disagree with the probabilities."""
    probabilities = np.asarray(probabilities, np.float32)
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded_image])),
        "probabilities": tf.train.Feature(float_list=tf.train.FloatList(value=probabilities.tolist())),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(np.argmax(probabilities))])),
        "prob": tf.train.Feature(float_list=tf.train.FloatList(value=[float(np.max(probabilities))])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def decode_record(serialized: bytes) -> dict:
    """The record's features as Python values (for tests and inspection)."""
    feature = tf.train.Example.FromString(serialized).features.feature
    return {
        "image/encoded": feature["image/encoded"].bytes_list.value[0],
        "probabilities": np.array(feature["probabilities"].float_list.value, np.float32),
        "label": feature["label"].int64_list.value[0],
        "prob": feature["prob"].float_list.value[0],
    }
