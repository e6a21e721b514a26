"""tf.data service (efficientnet/data/service.py): a dispatcher and two workers started with the
project's launcher, a tiny teacher run that trains and exports through them, and the one-line
errors of an address where nothing, or no worker, answers."""

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
import tensorflow as tf
from faultlib import ENV, ROOT, TINY_FLAGS, assert_user_error, cli, free_ports, run

from efficientnet.data import service

pytestmark = pytest.mark.slow
STARTUP_TIMEOUT_S = 90


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks of 1/100 s


def start_server(command: list[str], log: Path) -> subprocess.Popen:
    """A server process whose log goes to a file (a pipe nobody reads would fill and block it)."""
    with log.open("wb") as stderr:
        return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=stderr)


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-4000:]
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listened on port {port} within {STARTUP_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def data_service(tmp_path_factory):
    """`python -m efficientnet.data.service dispatcher` and two `… worker`s on localhost."""
    logs = tmp_path_factory.mktemp("data-service")
    ports = free_ports(3)
    launcher = "efficientnet.data.service"
    commands = [cli(launcher, "dispatcher", f"--port={ports[0]}")] + [
        cli(launcher, "worker", f"--dispatcher=localhost:{ports[0]}", f"--port={port}", "--worker_host=localhost")
        for port in ports[1:]
    ]
    servers = [start_server(command, logs / f"{index}.log") for index, command in enumerate(commands)]
    try:
        for index, (port, server) in enumerate(zip(ports, servers, strict=True)):
            wait_for_port(port, server, logs / f"{index}.log")
        yield f"grpc://localhost:{ports[0]}", servers[1:]
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_a_tiny_run_trains_and_exports_through_two_service_workers(data_service, tmp_path):
    address, workers = data_service
    before = [cpu_seconds(worker.pid) for worker in workers]
    model_dir = tmp_path / "run"
    result = run(
        cli(
            "teacher.train",
            f"--model_dir={model_dir}",
            "--dataset=digits",
            *TINY_FLAGS,
            "--batch_size=32",
            "--train_steps=12",
            "--log_every_steps=6",
            "--random_flip=false",
            "--randaugment_layers=2",  # work for the service's workers, whose CPU time shows who did it
            f"--data_service={address}",
        ),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    metadata = json.loads((model_dir / "export" / "model.json").read_text())
    assert metadata["steps"] == 12 and metadata["metrics"]["num_examples"] == 500
    assert json.loads((model_dir / "config.json").read_text())["data_service"] == address
    used = [cpu_seconds(worker.pid) - start for worker, start in zip(workers, before, strict=True)]
    # 12 steps of 32 images with RandAugment: the workers decoded and augmented them, both taking
    # splits of the records from the dispatcher (an idle worker uses about 0.01 s in this time).
    print(f"CPU seconds of the two service workers during the run: {used}")
    assert min(used) > 0.05 and sum(used) > 0.3, used


def test_an_address_where_nothing_answers_is_one_line_naming_it(tmp_path):
    (port,) = free_ports(1)
    began = time.monotonic()
    result = run(
        cli(
            "teacher.train", f"--model_dir={tmp_path}/run", "--train_steps=1", f"--data_service=grpc://localhost:{port}"
        )
    )
    assert time.monotonic() - began < 30
    assert_user_error(
        result,
        f"--data_service grpc://localhost:{port}: nothing answers there (Connection refused); start a dispatcher with "
        f"`python -m efficientnet.data.service dispatcher --port={port}` on localhost",
    )
    assert not (tmp_path / "run").exists()


# The probe of `check_answers` goes on asking the dispatcher in a background thread (the process
# ends there in a CLI); the dispatcher lives as long as the test process, so that it gets answers.
WORKERLESS_DISPATCHERS = []


def test_a_dispatcher_without_workers_is_named_within_the_timeout():
    dispatcher = tf.data.experimental.service.DispatchServer(tf.data.experimental.service.DispatcherConfig(port=0))
    WORKERLESS_DISPATCHERS.append(dispatcher)
    address = dispatcher.target
    began = time.monotonic()
    with pytest.raises(ValueError) as raised:
        service.check_answers(address, timeout_s=1)
    assert time.monotonic() - began < 10
    port = address.rsplit(":", 1)[1]
    assert str(raised.value) == (
        f"--data_service {address}: no tf.data dispatcher with a worker answered within 1 s; start one with "
        f"`python -m efficientnet.data.service worker --dispatcher=localhost:{port}` (or check that localhost:{port} "
        "is a dispatcher)"
    )


@pytest.mark.parametrize("address", ["localhost:5050", "grpc://localhost", "grpc://localhost:99999", "http://h:1"])
def test_a_malformed_address_is_refused_naming_the_flag(address):
    expected = f"--data_service must be grpc://HOST:PORT, the dispatcher's address; got '{address}'"
    with pytest.raises(ValueError, match=expected):
        service.parse_address(address)
