"""The files of a labeling output directory, named once for every reader.

  pseudo-SSSSS-of-NNNNN.tfrecord   the records (efficientnet/data/records.py), sharded
  stats.json                       counts, histogram, accuracy (docs/labeling.md#outputs-and-statsjson)
  config.json                      the resolved labeling settings
  failures.jsonl                   one {"id", "error"} line per undecodable image

`stats.json` is written last by the job and the directory is committed whole,
so its presence marks a complete output.
"""

from __future__ import annotations

import os

from efficientnet.util.fileio import RUN_CONFIG_FILE

RECORD_PREFIX = "pseudo"
RECORD_SUFFIX = ".tfrecord"
SHARD_TEMPLATE = "-SSSSS-of-NNNNN"
STATS_FILE = "stats.json"
CONFIG_FILE = RUN_CONFIG_FILE
FAILURES_FILE = "failures.jsonl"


def shard_name(shard: int, num_shards: int) -> str:
    """`pseudo-00001-of-00004.tfrecord`: shard 1 of 4, named as Beam's file sinks name shards."""
    numbered = SHARD_TEMPLATE.replace("SSSSS", f"{shard:05d}").replace("NNNNN", f"{num_shards:05d}")
    return RECORD_PREFIX + numbered + RECORD_SUFFIX


def record_pattern(output_dir: str) -> str:
    """The glob of an output directory's records, as `tfrecord:` takes it."""
    return f"{output_dir.rstrip('/')}/{RECORD_PREFIX}-*{RECORD_SUFFIX}"


def dataset_spec(output_dir: str) -> str:
    """The dataset spec a student reads this output with."""
    return f"tfrecord:{record_pattern(output_dir)}"


def stats_path(output_dir: str) -> str:
    return os.path.join(output_dir, STATS_FILE)


def failures_path(output_dir: str) -> str:
    return os.path.join(output_dir, FAILURES_FILE)
