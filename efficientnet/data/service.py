"""tf.data service: decode and augment on other machines' CPUs (docs/training.md#tfdata-service).

One host's cores may not keep its accelerators fed: at 224 px with
RandAugment a core prepares a few hundred images a second, where one GPU
trains EfficientNet-B0 on thousands. TensorFlow's tf.data service runs the
input pipeline on worker processes elsewhere (spare CPU machines, the other
hosts of a TPU VM slice) and streams the finished batches to the trainer.

  python -m efficientnet.data.service dispatcher --port=5050
  python -m efficientnet.data.service worker --dispatcher=HOST:5050 --port=5051   # on each CPU machine
  python -m teacher.train … --data_service=grpc://HOST:5050

The trainer registers its whole input pipeline (`input_pipeline.train_dataset`)
with the dispatcher, which hands the source's records out to the workers in
splits (dynamic sharding): each record is read by one worker per epoch, and
a worker that joins later takes its share. Batches then arrive in the order
the workers finish them, so a run through the service is not repeatable
batch for batch, unlike one that reads its input itself.
"""

from __future__ import annotations

import re
import socket
import threading

import tensorflow as tf
from absl import flags, logging

from efficientnet.util import cli

PROTOCOL = "grpc"
# How long `check_answers` waits for the dispatcher and a worker before giving up.
ANSWER_TIMEOUT_S = 30
_ADDRESS = re.compile(r"grpc://(?P<host>[^:/]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})")


def parse_address(address: str) -> tuple[str, int]:
    """`grpc://HOST:PORT` → (HOST, PORT), or a ValueError naming --data_service."""
    match = _ADDRESS.fullmatch(address)
    if not match or not 0 < int(match["port"]) < 65536:
        raise ValueError(f"--data_service must be grpc://HOST:PORT, the dispatcher's address; got {address!r}")
    return match["host"].strip("[]"), int(match["port"])


def distribute(dataset: tf.data.Dataset, address: str) -> tf.data.Dataset:
    """`dataset`, produced by the service's workers and streamed here.

    Dynamic sharding splits the dataset's source (the list of files or
    records) between the workers, so each record is read by one of them,
    whatever their number.
    """
    return dataset.apply(
        tf.data.experimental.service.distribute(
            processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC, service=address
        )
    ).prefetch(tf.data.AUTOTUNE)


def check_answers(address: str, timeout_s: float = ANSWER_TIMEOUT_S) -> None:
    """Raises a ValueError naming `address` unless a dispatcher answers there with a worker.

    TensorFlow itself retries an unreachable dispatcher forever, and waits
    forever for a worker, so a wrong address would hang a run with no word.
    This connects first (a refused connection fails at once), then sends a
    one-element dataset through the service and waits up to `timeout_s`.
    """
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        raise ValueError(
            f"--data_service {address}: nothing answers there ({error.strerror or error}); start a dispatcher "
            f"with `python -m efficientnet.data.service dispatcher --port={port}` on {host}"
        ) from None
    answered = threading.Event()

    def probe():
        for _ in distribute(tf.data.Dataset.range(1), address).take(1):
            answered.set()

    threading.Thread(target=probe, daemon=True, name="data-service-probe").start()
    if not answered.wait(timeout_s):
        raise ValueError(
            f"--data_service {address}: no tf.data dispatcher with a worker answered within {timeout_s:g} s; start "
            f"one with `python -m efficientnet.data.service worker --dispatcher={host}:{port}` (or check that "
            f"{host}:{port} is a dispatcher)"
        )


COMMANDS = ("dispatcher", "worker")


def define_flags() -> None:
    """The launcher's flags, defined only when it runs: the trainers import this module too."""
    flags.DEFINE_integer("port", 5050, "Port to listen on.")
    flags.DEFINE_string("dispatcher", None, "worker: the dispatcher's HOST:PORT.")
    flags.DEFINE_string(
        "worker_host", None, "worker: the host name trainers reach this worker at (default: this machine's name)."
    )
    flags.DEFINE_string(
        "work_dir", None, "dispatcher: where it keeps its journal (local or gs://), so that a restarted one carries on."
    )


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise ValueError(f"say which server to run: one of {list(COMMANDS)}, e.g. `… service dispatcher --port=5050`")
    service, values = tf.data.experimental.service, flags.FLAGS
    port, work_dir, dispatcher = values.port, values.work_dir, values.dispatcher
    if argv[1] == "dispatcher":
        server = service.DispatchServer(
            service.DispatcherConfig(port=port, work_dir=work_dir, fault_tolerant_mode=work_dir is not None)
        )
        logging.info(
            "tf.data dispatcher listening on port %d; train with --data_service=%s://%s:%d",
            port,
            PROTOCOL,
            socket.gethostname(),
            port,
        )
    else:
        if not dispatcher:
            raise ValueError("--dispatcher is required for a worker: the dispatcher's HOST:PORT")
        host = values.worker_host or socket.gethostname()
        server = service.WorkerServer(
            service.WorkerConfig(dispatcher_address=dispatcher, worker_address=f"{host}:%port%", port=port)
        )
        logging.info("tf.data worker on %s:%d serving dispatcher %s", host, port, dispatcher)
    server.join()


if __name__ == "__main__":
    define_flags()
    cli.run(main)
