"""One tiny run on one replica and on two (MirroredStrategy over two logical CPUs), as a script.

TensorFlow fixes its devices when it starts, so the CPU is split in two in a process of its
own: tests/faults/test_faults_workers.py runs `python tests/two_replicas.py ROOT`. It trains
ROOT/cpu, ROOT/mirrored and ROOT/mirrored-exact (`--input_sharding=exact`), each
`tiny_runs.replicated_config`, and prints one JSON line: how many replicas the
mirrored strategy had, whether its replicas were fed exactly the slices of the 1-replica
pipeline's global batches, and the error of a global batch that two replicas cannot share.
"""

import json
import sys

import numpy as np
import tensorflow as tf
from tiny_runs import replicated_config

from efficientnet.data import input_pipeline
from efficientnet.data.datasets import open_source
from efficientnet.train.distribute import make_strategy
from efficientnet.train.loop import train


def split_cpu_in_two() -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def replicas_see_the_global_batches(strategy: tf.distribute.Strategy, steps: int = 3) -> bool:
    source = open_source("digits")

    def batches(context=None):
        return input_pipeline.train_dataset(source, "train", batch_size=8, resolution=32, input_context=context)

    whole, sliced = iter(batches()), iter(strategy.distribute_datasets_from_function(batches))
    for _ in range(steps):
        replicas = strategy.experimental_local_results(next(sliced)["image"])
        if not np.array_equal(next(whole)["image"].numpy(), np.concatenate([part.numpy() for part in replicas])):
            return False
    return True


def main(root: str) -> None:
    split_cpu_in_two()
    for strategy in ("cpu", "mirrored"):
        train(replicated_config(f"{root}/{strategy}", strategy=strategy))
    # One worker reads the same stream in both modes; files is the default above.
    train(replicated_config(f"{root}/mirrored-exact", strategy="mirrored", input_sharding="exact"))
    try:
        train(replicated_config(f"{root}/odd", strategy="mirrored", batch_size=7))
        odd_batch_error = None
    except ValueError as error:
        odd_batch_error = str(error)
    mirrored = make_strategy("mirrored")
    report = {
        "replicas": mirrored.num_replicas_in_sync,
        "same_global_batches": replicas_see_the_global_batches(mirrored),
        "odd_batch_error": odd_batch_error,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
