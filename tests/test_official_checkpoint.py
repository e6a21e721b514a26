"""Reference TPU checkpoints (the released Noisy Student weights) load into our model.

Offline: the checkpoints are written here from tiny models of ours (width and depth 0.25,
32 px), under the names the reference code gives its variables. `reference_variables` derives
those names on its own, not from `official_checkpoint`'s table, by the reference's rules
(tensorflow/tpu models/official/efficientnet/efficientnet_model.py): `build_model` opens the
size's variable scope and `Model.call` opens `stem`, `blocks_<i>` and `head`; a `tf.layers`
layer takes its name when first called, the kind's name numbered within the open scope
(`conv2d`, `conv2d_1`, …); `MBConvBlock.call` calls its layers in `BLOCK_CALL_ORDER`, the
squeeze-excite ones inside `variable_scope('se')`; `tf.train.ExponentialMovingAverage` keeps
each average as `<variable>/ExponentialMovingAverage`.
"""

import collections
import io
import os
import tarfile
import urllib.error
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from cli_driver import run_in_one_process

from efficientnet import build_model
from efficientnet.model import export, official_checkpoint, scaling
from efficientnet.model.inference import Predictor
from efficientnet.model.init_from import initialize_from

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(width=0.25, depth=0.25, resolution=32, small_images=True)
NUM_CLASSES = 10
EMA = "/ExponentialMovingAverage"
# Our block layers in the order MBConvBlock.call calls the reference's (expansion only when
# expand_ratio != 1), each with the variable scope it is called in.
BLOCK_CALL_ORDER = [
    ("expand_conv", ""),
    ("expand_bn", ""),
    ("dwconv", ""),
    ("dwconv_bn", ""),
    ("se_reduce", "se/"),
    ("se_expand", "se/"),
    ("project_conv", ""),
    ("project_bn", ""),
]
# The reference's tf.layers kind of each Keras class (utils.TpuBatchNormalization for batch norm).
KINDS = {
    keras.layers.DepthwiseConv2D: "depthwise_conv2d",
    keras.layers.Conv2D: "conv2d",
    keras.layers.BatchNormalization: "tpu_batch_normalization",
    keras.layers.Dense: "dense",
}


def _kind(layer) -> str:
    return next(kind for cls, kind in KINDS.items() if isinstance(layer, cls))


def reference_variables(model: keras.Model, scope: str) -> dict[str, np.ndarray]:
    """The reference's variable name → value for every weight of `model` (no EMA suffix)."""
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    blocks = list(dict.fromkeys(name.split("_")[0] for name in layers if name.startswith("block")))
    calls = [("stem", [(layers["stem_conv"], ""), (layers["stem_bn"], "")])]
    for index, block in enumerate(blocks):
        present = [(layers[f"{block}_{role}"], sub) for role, sub in BLOCK_CALL_ORDER if f"{block}_{role}" in layers]
        calls.append((f"blocks_{index}", present))
    calls.append(("head", [(layers["head_conv"], ""), (layers["head_bn"], ""), (layers["logits"], "")]))
    variables = {}
    for part, called in calls:
        taken = collections.Counter()
        for layer, sub in called:
            kind = _kind(layer)
            number = taken[sub + kind]
            taken[sub + kind] += 1
            name = f"{scope}/{part}/{sub}{kind}" + (f"_{number}" if number else "")
            for weight in layer.weights:
                # tf.keras's DepthwiseConv2D, which the reference wraps, calls its kernel depthwise_kernel.
                leaf = "depthwise_kernel" if kind == "depthwise_conv2d" else weight.name
                variables[f"{name}/{leaf}"] = np.asarray(weight.numpy())
    return variables


def like_trained(model: keras.Model, seed: int) -> keras.Model:
    """Batch-norm statistics and a classifier scale of a trained model, so logits are far from 0."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights(
                [rng.uniform(0.8, 1.2, channels), rng.normal(0, 0.1, channels)]
                + [rng.normal(0, 0.1, channels), rng.uniform(0.8, 1.2, channels)]
            )
    kernel, bias = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([kernel * 50, rng.normal(0, 1, bias.shape)])
    return model


def tiny(name="efficientnet-b0", seed=0, num_classes=NUM_CLASSES, **overrides) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return like_trained(build_model(name, num_classes=num_classes, **(TINY | overrides)), seed)


def write_reference_checkpoint(prefix, ema_model, raw_model=None, *, scope=None, drop=(), ema=True) -> str:
    """A TF1-style checkpoint: raw variables from `raw_model`, their EMA copies from `ema_model`."""
    scope = scope or ema_model.name
    averaged = reference_variables(ema_model, scope)
    raw = reference_variables(raw_model or ema_model, scope)
    tensors = dict(raw) | ({name + EMA: value for name, value in averaged.items()} if ema else {})
    tensors[f"{scope}/global_step"] = np.array(1000, np.int64)  # like the reference's; never read
    tensors = {name: value for name, value in tensors.items() if not any(part in name for part in drop)}
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(tensors[name]) for name in names],
    )
    return str(prefix)


IMAGES = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")


def logits(model) -> np.ndarray:
    return np.asarray(model(IMAGES, training=False))


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A checkpoint as the release unpacks it (a folder, its `checkpoint` state file, model.ckpt-*)."""
    directory = tmp_path_factory.mktemp("release") / "noisy_student_efficientnet-b0"
    averaged, raw = tiny(seed=0), tiny(seed=1)
    write_reference_checkpoint(directory / "model.ckpt", averaged, raw)
    (directory / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')
    return {"dir": str(directory), "model": averaged, "ema_logits": logits(averaged), "raw_logits": logits(raw)}


@pytest.fixture(scope="module")
def refusing():
    """The tiny B0 the refused checkpoints are loaded into (a refusal changes no weight) and its config."""
    return tiny(seed=2), scaling.model_config("efficientnet-b0", NUM_CLASSES, **TINY)


def test_names_equal_the_references_for_every_weight_of_b0():
    config = scaling.model_config("efficientnet-b0")
    ours = official_checkpoint.official_variable_names(config)
    expected = reference_variables(build_model("efficientnet-b0"), "efficientnet-b0")
    assert sorted(name for names in ours.values() for name in names) == sorted(expected)
    assert {
        "efficientnet-b0/stem/conv2d/kernel",
        "efficientnet-b0/stem/tpu_batch_normalization/moving_mean",
        "efficientnet-b0/blocks_0/depthwise_conv2d/depthwise_kernel",
        "efficientnet-b0/blocks_0/conv2d/kernel",  # the projection of a block without expansion
        "efficientnet-b0/blocks_0/tpu_batch_normalization_1/gamma",
        "efficientnet-b0/blocks_1/conv2d/kernel",  # expansion
        "efficientnet-b0/blocks_1/conv2d_1/kernel",  # projection
        "efficientnet-b0/blocks_1/se/conv2d/bias",
        "efficientnet-b0/blocks_1/se/conv2d_1/kernel",
        "efficientnet-b0/blocks_1/tpu_batch_normalization_2/gamma",
        "efficientnet-b0/blocks_15/conv2d_1/kernel",
        "efficientnet-b0/head/dense/kernel",
    } <= set(expected)


@pytest.mark.parametrize(
    "name, count",
    [
        # B0 (depth 1.0): stage repeats 1, 2, 2, 3, 3, 4, 1 = 16 blocks; the first stage's block
        # has no expansion. Stem: conv kernel + 4 batch-norm variables = 5. A block with
        # expansion: expand, depthwise and project kernels (3) + 3 batch norms (12) + squeeze-excite
        # kernels and biases (4) = 19; without: 14. Head: conv kernel + batch norm + dense kernel
        # and bias = 7. 5 + 1·14 + 15·19 + 7 = 311.
        ("efficientnet-b0", 311),
        # L2 (depth 5.3): ceil(5.3·r) for r = 1, 2, 2, 3, 3, 4, 1 gives 6, 11, 11, 16, 16, 22, 6
        # = 88 blocks, the first stage's 6 without expansion: 5 + 6·14 + 82·19 + 7 = 1654.
        ("efficientnet-l2", 1654),
    ],
)
def test_variable_counts_of_the_official_models(name, count):
    names = official_checkpoint.official_variable_names(scaling.model_config(name))
    flat = [variable for variables in names.values() for variable in variables]
    assert len(flat) == len(set(flat)) == count


def test_init_from_values_and_released_names():
    assert official_checkpoint.parse_init_from("noisy_student:gs://b/ns-b0") == ("gs://b/ns-b0", True)
    assert official_checkpoint.parse_init_from("noisy_student_raw:ns-b0/model.ckpt") == ("ns-b0/model.ckpt", False)
    assert official_checkpoint.parse_init_from("runs/teacher/export") is None
    with pytest.raises(ValueError, match="name a checkpoint after 'noisy_student:'"):
        official_checkpoint.parse_init_from("noisy_student:")
    # L2-475 holds efficientnet-l2 variables; its folder tells the resolution it was fine-tuned at.
    name = official_checkpoint.released_name_of("gs://b/noisy_student_efficientnet-l2_475/model.ckpt")
    assert name == "efficientnet-l2_475"
    assert official_checkpoint.RELEASED.get(name) == official_checkpoint.ReleasedCheckpoint(
        "efficientnet-l2", 475, 88.2
    )
    assert official_checkpoint.released_name_of("/data/my-b0/model.ckpt") is None


def test_ema_weights_by_default_and_raw_ones_when_asked(released):
    assert np.abs(released["ema_logits"]).max() > 1  # far from a fresh network's ~0
    assert np.abs(released["ema_logits"] - released["raw_logits"]).max() > 1
    config = scaling.model_config("efficientnet-b0", NUM_CLASSES, **TINY)
    fresh = tiny(seed=2)
    official_checkpoint.load_official_checkpoint(fresh, config, released["dir"])
    np.testing.assert_array_equal(logits(fresh), released["ema_logits"])
    official_checkpoint.load_official_checkpoint(fresh, config, released["dir"], use_ema=False)
    np.testing.assert_array_equal(logits(fresh), released["raw_logits"])


def test_init_from_in_training_and_a_new_label_set(released):
    config = scaling.model_config("efficientnet-b0", NUM_CLASSES, **TINY)
    model = tiny(seed=2)
    initialize_from(model, f"noisy_student:{released['dir']}", config)
    np.testing.assert_array_equal(logits(model), released["ema_logits"])
    initialize_from(model, f"noisy_student_raw:{released['dir']}/model.ckpt", config)
    np.testing.assert_array_equal(logits(model), released["raw_logits"])
    # Fine-tuning on 3 classes: everything but the classifier comes from the checkpoint.
    other = tiny(seed=2, num_classes=3)
    classifier = other.get_layer("logits").get_weights()
    initialize_from(other, f"noisy_student:{released['dir']}", scaling.model_config("efficientnet-b0", 3, **TINY))
    np.testing.assert_array_equal(other.get_layer("logits").get_weights()[0], classifier[0])
    reader = tf.train.load_checkpoint(released["dir"])
    np.testing.assert_array_equal(
        other.get_layer("head_conv").kernel.numpy(), reader.get_tensor("efficientnet-b0/head/conv2d/kernel" + EMA)
    )


def test_a_checkpoint_of_another_size_is_refused_naming_both(tmp_path, released, refusing):
    # Only the scope says B2 here: the tiny overrides give both sizes the same shapes.
    prefix = write_reference_checkpoint(tmp_path / "b2" / "model.ckpt", released["model"], scope="efficientnet-b2")
    with pytest.raises(ValueError) as error:
        official_checkpoint.load_official_checkpoint(*refusing, prefix)
    assert str(error.value) == (
        f"the checkpoint {prefix} holds efficientnet-b2 (its variables are under 'efficientnet-b2/'), but the model "
        "is efficientnet-b0: build the model as efficientnet-b2 (--model=efficientnet-b2) or pass a checkpoint of "
        "efficientnet-b0"
    )


def test_other_widths_or_depth_under_the_same_name_are_refused(tmp_path, refusing):
    wider = write_reference_checkpoint(tmp_path / "wide" / "model.ckpt", tiny(width=0.5))
    with pytest.raises(ValueError) as error:
        official_checkpoint.load_official_checkpoint(*refusing, wider)
    assert str(error.value) == (
        f"{wider}: efficientnet-b0/stem/conv2d/kernel/ExponentialMovingAverage has shape [3, 3, 3, 16], but "
        "'stem_conv' of the model needs [3, 3, 3, 8]: the checkpoint's efficientnet-b0 has other widths than the "
        "model (width 0.25, 10 classes)"
    )
    deeper = write_reference_checkpoint(tmp_path / "deep" / "model.ckpt", tiny(depth=0.5))
    with pytest.raises(ValueError, match=r"holds 10 blocks of efficientnet-b0, the model 7 \(depth 0.25\)"):
        official_checkpoint.load_official_checkpoint(*refusing, deeper)


def test_missing_variables_are_named(tmp_path, released, refusing):
    source = released["model"]
    prefix = write_reference_checkpoint(tmp_path / "a" / "model.ckpt", source, drop=["blocks_2/se/conv2d_1/"])
    with pytest.raises(ValueError) as error:
        official_checkpoint.load_official_checkpoint(*refusing, prefix)
    assert str(error.value) == (
        f"{prefix} lacks 2 variable(s) the model needs: "
        "efficientnet-b0/blocks_2/se/conv2d_1/kernel/ExponentialMovingAverage, "
        "efficientnet-b0/blocks_2/se/conv2d_1/bias/ExponentialMovingAverage"
    )
    raw_only = write_reference_checkpoint(tmp_path / "b" / "model.ckpt", source, ema=False)
    with pytest.raises(ValueError, match=r"lacks 140 variable\(s\) .* and 135 more; it holds the raw variables"):
        official_checkpoint.load_official_checkpoint(*refusing, raw_only)


def test_a_released_name_offline_is_a_one_line_error(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(official_checkpoint.urllib.request, "urlopen", offline)
    with pytest.raises(ValueError) as error:
        official_checkpoint.resolve_checkpoint("efficientnet-b0", cache_dir=str(tmp_path))
    assert str(error.value) == (
        "cannot download the released checkpoint 'efficientnet-b0' from https://storage.googleapis.com/"
        "cloud-tpu-checkpoints/efficientnet/noisystudent/noisy_student_efficientnet-b0.tar.gz ([Errno -3] Temporary "
        "failure in name resolution); download it elsewhere, unpack it (tar xzf noisy_student_efficientnet-b0.tar.gz) "
        "and pass its directory instead, e.g. --init_from=noisy_student:noisy_student_efficientnet-b0 or "
        "--checkpoint=noisy_student_efficientnet-b0"
    )
    assert os.listdir(tmp_path) == []  # no half-unpacked leftovers
    with pytest.raises(ValueError, match="unknown released Noisy Student checkpoint 'efficientnet-b9'; valid names: "):
        official_checkpoint.resolve_checkpoint("efficientnet-b9", cache_dir=str(tmp_path))


def test_a_released_name_is_unpacked_into_the_cache_once(released, tmp_path, monkeypatch):
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(released["dir"], arcname="noisy_student_efficientnet-b0")
    urls = []

    def serve(url, timeout):
        urls.append(url)
        return io.BytesIO(archive.getvalue())

    monkeypatch.setattr(official_checkpoint.urllib.request, "urlopen", serve)
    for _ in range(2):
        prefix = official_checkpoint.resolve_checkpoint("efficientnet-b0", cache_dir=str(tmp_path))
        assert prefix == str(
            tmp_path / "noisy_student_efficientnet-b0" / "noisy_student_efficientnet-b0" / "model.ckpt"
        )
    assert urls == [official_checkpoint.RELEASE_URL + "noisy_student_efficientnet-b0.tar.gz"]


@pytest.mark.slow  # one CLI process
def test_the_converter_cli_writes_an_export_with_the_same_logits(released, tmp_path):
    output = tmp_path / "export"
    env = os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    tiny_flags = ["--width=0.25", "--depth=0.25", "--resolution=32", "--small_images"]
    converted, wrong_size, missing = run_in_one_process(
        "efficientnet.model.convert_checkpoint",
        [
            [f"--checkpoint={released['dir']}", f"--output={output}", *tiny_flags],
            [f"--checkpoint={released['dir']}", f"--output={tmp_path / 'b3'}", "--model=efficientnet-b3", *tiny_flags],
            [f"--checkpoint={tmp_path / 'nowhere'}", f"--output={tmp_path / 'none'}"],
        ],
        tmp_path / "driver",
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert converted.returncode == 0, converted.stderr
    assert converted.stdout.startswith(f"wrote {output}/model.json: efficientnet-b0 at 32 px, 10 classes, ema weights")
    predictor = Predictor.from_export(str(output))
    np.testing.assert_allclose(predictor.logits(IMAGES), released["ema_logits"], atol=1e-4, rtol=1e-5)
    metadata = export.load_metadata(str(output))
    assert metadata["converted_from"]["weights"] == "ema"
    assert metadata["published_top1"] == 78.8  # the folder's name says which release it is
    assert (wrong_size.returncode, missing.returncode) == (2, 2)
    assert (
        wrong_size.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"error: the checkpoint {released['dir']}/model.ckpt holds efficientnet-b0 (its variables are under "
            "'efficientnet-b0/'), but the model is efficientnet-b3"
        )
    )
    assert missing.stderr.strip().splitlines()[-1] == (
        f"error: no TensorFlow checkpoint at '{tmp_path / 'nowhere'}' (expected PREFIX.index and PREFIX.data-*, "
        "or a directory holding them)"
    )
    assert not (tmp_path / "b3").exists() and not (tmp_path / "none").exists()
