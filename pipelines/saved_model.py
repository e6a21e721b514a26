"""An export as a TensorFlow SavedModel for TF Serving and Vertex AI.

  python -m pipelines.saved_model --export=runs/digits/round2-student/export
  python -m pipelines.saved_model --export=gs://BUCKET/b0/export --output=gs://BUCKET/serving/b0/1

Writes `<export>/saved_model` unless --output names another directory (TF
Serving wants a numbered version directory under the model's base path, as in
the second line), then prints where it wrote and the serving signature. Bad
input (no export at --export, an --output holding other files) ends with one
`error: ...` line and exit status 2. The library behind it is
efficientnet/model/serving.py, which the tests call directly.
"""

from __future__ import annotations

from absl import flags, logging

from efficientnet.model import serving
from efficientnet.util import cli

_EXPORT = flags.DEFINE_string("export", None, "Export directory (or a model_dir holding export/).", required=True)
_OUTPUT = flags.DEFINE_string(
    "output", None, f"SavedModel directory, local or gs:// (default: <export>/{serving.SAVED_MODEL_DIR})."
)


def main(argv):
    del argv
    if logging.get_verbosity() < 1:
        # Writing a SavedModel logs INFO lines about TensorFlow's internals (renamed
        # capture names, assets, fingerprint), and this tool has no INFO of its own;
        # --verbosity=1 keeps them, as it keeps the native lines the console filter
        # drops (efficientnet/util/console.py).
        logging.set_verbosity(logging.WARNING)
    output_dir = serving.write_saved_model(_EXPORT.value, _OUTPUT.value)
    print(f"wrote SavedModel to {output_dir}")
    print(serving.describe_signature(output_dir))


if __name__ == "__main__":
    cli.run(main)
