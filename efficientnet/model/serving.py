"""An export as a TensorFlow SavedModel, ready for TF Serving and Vertex AI.

An export (`model.keras` + `model.json`) needs this project's code to run: its
layers are registered here, and its preprocessing is `eval_image` at the
resolution `model.json` records. A serving system has neither, so the
SavedModel carries both inside its graph. Its `serving_default` signature takes
a batch of encoded images (`image_bytes`, string [None]: JPEG, PNG, BMP or GIF
of any size, read by `decode_image` exactly as evaluation and labeling read
them) and returns, one row per image (TF Serving's row format needs every
output batched):

- `probabilities`: float32 [N, num_classes], the softmax of the logits;
- `class_names`: string [N, num_classes], the export's class names in the
  order of `probabilities` ("0", "1", … when the export has none);
- `top_class`: string [N], the most probable class name.

The input is named with a `_bytes` suffix because that is the convention of
Google's prediction services (Vertex AI's prebuilt TensorFlow containers and
AI Platform before it) for binary inputs: a JSON request passes each image as
`{"b64": "<base64>"}` and the server decodes it to bytes; TF Serving's REST API
decodes `{"b64": …}` for any string input. An image that cannot be decoded
fails the whole request with TensorFlow's InvalidArgument error, as serving
systems usually do; the batch jobs (`Predictor.views_of_encoded`, the labeling
job) are where undecodable images are skipped and listed instead.

The model runs with `training=False` (no dropout or stochastic depth, batch
norm's moving statistics) and the weights the export holds (the EMA weights,
docs/training.md#ema); its variables are saved as variables, so TF Serving's
graph optimiser, not ours, decides what to fold.
"""

from __future__ import annotations

import os
import tempfile

import keras
import tensorflow as tf

from efficientnet.data import preprocessing
from efficientnet.model.export import load_export, resolve_export_dir
from efficientnet.util import fileio

SAVED_MODEL_DIR = "saved_model"  # the default output, inside the export directory
SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY  # "serving_default", what TF Serving calls
INPUT_NAME = "image_bytes"
# Every loader (tf.saved_model.load, TF Serving, Vertex AI) recognises a
# SavedModel by this file, so it is the one copied last (see `_publish`).
GRAPH_FILE = tf.saved_model.SAVED_MODEL_FILENAME_PB
# What a SavedModel directory may hold; a directory holding anything else is
# not replaced, so a mistyped --output cannot delete unrelated files.
SAVED_MODEL_ENTRIES = {
    GRAPH_FILE,
    "fingerprint.pb",
    tf.saved_model.VARIABLES_DIRECTORY,
    tf.saved_model.ASSETS_DIRECTORY,
}


def default_output(export_path: str) -> str:
    """`<export dir>/saved_model`: the SavedModel travels with the export it was made from."""
    return os.path.join(resolve_export_dir(export_path), SAVED_MODEL_DIR)


def class_names_of(metadata: dict, num_classes: int) -> list[str]:
    """The export's class names, or "0", "1", … when it recorded none."""
    names = metadata.get("class_names") or [str(index) for index in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"the export's model.json lists {len(names)} class names but the model has {num_classes}")
    return [str(name) for name in names]


def serving_function(model: keras.Model, resolution: int, class_names: list[str]):
    """encoded images string [N] → {probabilities, class_names, top_class}, preprocessing included."""
    names = tf.constant(class_names)
    view_spec = tf.TensorSpec([resolution, resolution, 3], tf.float32)

    def view(encoded):
        return preprocessing.eval_image(preprocessing.decode_image(encoded), resolution)

    def serve(image_bytes):
        images = tf.map_fn(view, image_bytes, fn_output_signature=view_spec)
        probabilities = tf.nn.softmax(model(images, training=False), axis=-1)
        return {
            "probabilities": probabilities,
            "class_names": tf.tile(names[tf.newaxis], [tf.shape(image_bytes)[0], 1]),
            "top_class": tf.gather(names, tf.argmax(probabilities, axis=-1)),
        }

    return serve


def write_saved_model(export_path: str, output_dir: str | None = None) -> str:
    """Writes the export at `export_path` as a SavedModel to `output_dir`; returns that directory.

    Args:
      export_path: An export directory, a model_dir holding `export/`, or a file in it.
      output_dir: Local or gs:// directory; default `<export dir>/saved_model`.
        An existing SavedModel there is replaced.
    """
    output_dir = (output_dir or default_output(export_path)).rstrip("/")
    _check_replaceable(output_dir)
    model, metadata = load_export(export_path)
    resolution = int(metadata["input"]["resolution"])
    class_names = class_names_of(metadata, int(model.output_shape[-1]))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=serving_function(model, resolution, class_names),
        input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)],
    )
    with tempfile.TemporaryDirectory() as local:
        archive.write_out(local, verbose=False)
        _publish(local, output_dir)
    return output_dir


def describe_signature(saved_model_dir: str) -> str:
    """One line: the serving signature's inputs and outputs, as the loaded SavedModel declares them."""
    signature = tf.saved_model.load(saved_model_dir).signatures[SIGNATURE]

    def spec(name, tensor):
        shape = "[" + ", ".join("None" if size is None else str(size) for size in tensor.shape) + "]"
        return f"{name}: {tensor.dtype.name} {shape}"

    inputs = ", ".join(spec(name, tensor) for name, tensor in sorted(signature.structured_input_signature[1].items()))
    outputs = ", ".join(spec(name, tensor) for name, tensor in sorted(signature.structured_outputs.items()))
    return f"{SIGNATURE}({inputs}) -> {outputs}"


def _check_replaceable(output_dir: str) -> None:
    if not tf.io.gfile.exists(output_dir):
        return
    if not tf.io.gfile.isdir(output_dir):
        raise ValueError(f"--output {output_dir!r} is a file, not a directory")
    # Hidden names are the temporary files of an interrupted `fileio.copy_file`.
    foreign = sorted(
        name.rstrip("/")
        for name in tf.io.gfile.listdir(output_dir)
        if name.rstrip("/") not in SAVED_MODEL_ENTRIES and not name.startswith(".")
    )
    if foreign:
        raise ValueError(
            f"--output {output_dir!r} holds {foreign[0]!r}, which is not part of a SavedModel; refusing to replace it"
        )


def _publish(local_dir: str, output_dir: str) -> None:
    """Copies the SavedModel in `local_dir` to `output_dir`, `saved_model.pb` last.

    A directory cannot be replaced atomically on gs://, and a rename of a
    local directory would not help a gs:// output, so one procedure serves
    both: the old `saved_model.pb` is removed first, every other file is copied
    (each atomically, `fileio.copy_file`), files of the old model that the new
    one lacks are deleted, and the new `saved_model.pb` lands last. While this
    runs, and after a failure part-way, the directory holds no
    `saved_model.pb`, so no loader takes it for a SavedModel; a rerun completes
    it. A failure before the copy starts (loading or tracing the model)
    leaves the destination untouched.
    """
    old_files = set(_files_under(output_dir)) if tf.io.gfile.exists(output_dir) else set()
    new_files = [relative for relative in _files_under(local_dir) if relative != GRAPH_FILE]
    if GRAPH_FILE in old_files:
        tf.io.gfile.remove(os.path.join(output_dir, GRAPH_FILE))  # not a SavedModel from here until the end
    for relative in new_files:
        fileio.copy_file(os.path.join(local_dir, relative), os.path.join(output_dir, relative))
    for relative in sorted(old_files - set(new_files) - {GRAPH_FILE}):
        tf.io.gfile.remove(os.path.join(output_dir, relative))
    fileio.copy_file(os.path.join(local_dir, GRAPH_FILE), os.path.join(output_dir, GRAPH_FILE))


def _files_under(directory: str) -> list[str]:
    """Paths of the files under `directory`, relative to it."""
    return [
        os.path.relpath(os.path.join(root, name), directory)
        for root, _, names in tf.io.gfile.walk(directory)
        for name in names
    ]
