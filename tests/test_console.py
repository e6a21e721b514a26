"""The quiet console (efficientnet/util/console.py): what is noise, the --verbosity flag, real CLIs.

The line classifier decides what a user never sees, so each kind of line is pinned by hand:
a filter that dropped absl *Python* lines would hide `resumed from …` and `exported …`, one that
dropped native errors would hide real failures. The subprocess tests check the whole path —
the filter installed from the package `__init__` before TensorFlow loads — as a user runs it.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from efficientnet.util.console import is_noise, quiet_native_logs, verbosity

ROOT = Path(__file__).resolve().parents[1]
# TF_CPP_MIN_LOG_LEVEL would hide some native lines on its own and blur what the filter does.
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | {"PYTHONPATH": str(ROOT)}
NATIVE_NOISE = ("cuInit", "oneDNN", "cpu_feature_guard", "absl::InitializeLog")

CUINIT = (
    "E0000 00:00:1796001865.356253   10012 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)"
)


@pytest.mark.parametrize(
    "line",
    [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        "I0000 00:00:1796001861.683965   10012 port.cc:153] oneDNN custom operations are on. You may see slightly "
        "different numerical results due to floating-point round-off errors from different computation orders.\n",
        "I0000 00:00:1796001861.684324   10012 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
        "GPU will not be used.\n",
        "I0000 00:00:1796001861.737863   10012 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
        "available CPU instructions in performance-critical operations.",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
        "appropriate compiler flags.\n",
        "W1130 01:24:34.034072   10012 gpu_device.cc:2341] Cannot dlopen some GPU libraries.\n",
        "I1130 01:24:34.034072 139931315620736 functional_saver.py:440] Sharding callback duration: 225 microseconds\n",
        "I1130 05:02:50.283783 139772032928640 cross_device_ops.py:1154] Collective all_reduce tensors: 1 all_reduces, "
        "num_devices = 1, group_size = 2, implementation = CommunicationImplementation.AUTO, num_packs = 1\n",
        CUINIT + "\n",
        "\t [[{{function_node __inference_view_batch_123}}{{node DecodeImage}}]]\n",
        "\t [[{{node decode_image/DecodeImage}}]]\n",
    ],
)
def test_noise_is_dropped_without_gpu(line):
    assert is_noise(line, has_gpu=False)


@pytest.mark.parametrize(
    "line",
    [
        # absl Python logging: same prefix as native lines, but a .py file; the project's messages are these.
        "I1130 01:28:27.487063 140461847247744 loop.py:176] resumed from /tmp/t/checkpoints/ckpt-2 at step 2\n",
        "I1130 01:24:36.481515 139931315620736 loop.py:246] exported /tmp/t/export: top1 0.104, top5 0.506\n",
        "W1130 01:24:36.481515 139931315620736 pipeline.py:128] removed the leftovers of an interrupted run: x\n",
        "W1130 01:32:45.738672 139911466937216 ag_logging.py:142] AutoGraph could not transform <function f>\n",
        # A native error other than cuInit, and a fatal one, are real.
        "E0000 00:00:1796001865.356253   10012 cuda_dnn.cc:522] Loaded runtime CuDNN library: 8.1.0\n",
        "F1130 01:24:34.034072   10012 tensor_shape.cc:587] Check failed: d >= 0 (0 vs. -1)\n",
        "error: unknown model 'nope'; valid names: efficientnet-b0, efficientnet-b1\n",
        "step 10/60 | 83.1 img/s | loss 2.52, labeled 2.492, l2 0.02773 | lr 0.00100 | ETA 0m36s\n",
        "Traceback (most recent call last):\n",
        "WARNING:tensorflow:5 out of the last 5 calls to <function f> triggered tf.function retracing.\n",
        "\n",
        "",
    ],
)
def test_real_output_is_kept(line):
    assert not is_noise(line, has_gpu=False)
    assert not is_noise(line, has_gpu=True)


def test_cuinit_failure_is_kept_on_a_machine_with_a_gpu():
    """There it means the driver is broken, not that there is no GPU."""
    assert not is_noise(CUINIT, has_gpu=True)


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], 0),
        (["--model=efficientnet-b0"], 0),
        (["--verbosity=1"], 1),
        (["--verbosity", "1"], 1),
        (["-v", "1"], 1),
        (["-v=2"], 2),
        (["--v=1"], 1),
        (["-verbosity=1"], 1),
        (["--verbosity=-1"], -1),
        (["-v", "1", "--verbosity=0"], 0),  # the last one wins, as in absl
        (["--verbosity=loud"], 0),  # absl rejects it itself
        (["-v"], 0),
        (["--", "-v", "1"], 0),  # after `--`, arguments are not flags
        (["--verbose=1", "-vv", "--vmodule=x=1"], 0),  # other flags
    ],
)
def test_verbosity_reads_absl_spellings(args, expected):
    assert verbosity(args) == expected


def test_nothing_is_installed_outside_a_python_dash_m_command_line():
    assert not quiet_native_logs(["/usr/bin/pytest", "tests"])
    assert not quiet_native_logs([])
    assert not quiet_native_logs(["-m", "--verbosity=1"])
    assert not quiet_native_logs(["-m", "-v", "3"])


def test_filter_forwards_live_output_and_a_fatal_error_before_abort():
    """A fatal native line written just before abort() still reaches the terminal (the reader is a
    separate process); noise is dropped, kept lines keep their order, a trailing partial line is kept.
    """
    script = textwrap.dedent(
        """
        import os, sys
        sys.argv = ["-m"]
        from efficientnet.util.console import quiet_native_logs
        assert quiet_native_logs()
        os.write(2, b"I0000 00:00:1.5   7 port.cc:153] oneDNN custom operations are on.\\n")
        print("step 1/2 | progress", file=sys.stderr, flush=True)
        os.write(2, b"To enable the following instructions: AVX2 FMA, in other operations, rebuild TF.\\n")
        os.write(2, b"I1130 01:24:34.034072 1 loop.py:176] resumed from ckpt-2 at step 2\\n")
        os.write(2, b"F1130 01:24:34.034072   7 tensor_shape.cc:587] Check failed: d >= 0\\n")
        os.write(2, b"no newline")
        os.abort()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stderr == (
        "step 1/2 | progress\n"
        "I1130 01:24:34.034072 1 loop.py:176] resumed from ckpt-2 at step 2\n"
        "F1130 01:24:34.034072   7 tensor_shape.cc:587] Check failed: d >= 0\n"
        "no newline"
    )


# Building the model lists the devices (the CUDA probe); a tiny one keeps the run short.
TINY_MODEL = ("--model=efficientnet-b0", "--width=0.1", "--depth=0.1", "--resolution=32", "--num_classes=10")


def run_summary(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "efficientnet.model.summary", *TINY_MODEL, *flags],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # a CLI process
def test_cli_starts_without_native_noise():
    result = run_summary()
    assert result.returncode == 0, result.stderr
    assert "multiply-adds" in result.stdout
    for fragment in NATIVE_NOISE:
        assert fragment not in result.stderr, result.stderr


@pytest.mark.slow  # a CLI process
def test_verbosity_flag_brings_the_native_lines_back():
    result = run_summary("--verbosity=1")
    assert result.returncode == 0, result.stderr
    assert "multiply-adds" in result.stdout
    assert "oneDNN" in result.stderr, result.stderr
