"""Dataset specs: one string picks the data, for every tool.

  digits                         the UCI handwritten digits, shipped in the package (offline)
  digits:per_class=N             the same with N (1-15) labeled images per class
  digits:unlabeled_shift=corrupted
                                 the same with an out-of-domain unlabeled pool (the 947 images,
                                 each under a seeded ImageNet-C corruption); arguments combine,
                                 comma-separated: digits:per_class=4,unlabeled_shift=corrupted
  tfds:NAME[/CONFIG][:VERSION]   a TFDS dataset, e.g. tfds:imagenet2012, tfds:cifar10
  tfrecord:GLOB                  ImageNet-format or pseudo-label TFRecords
  folder:PATH                    one subfolder per class holding image files (labeled),
                                 or image files directly in PATH (unlabeled)
  images:GLOB                    image files matching a pattern, `**` for any depth (unlabeled)

`open_source(spec)` is the one parser of these strings; training, evaluation,
labeling and the robustness benchmarks all call it, and read what it returns
through `Source.examples` (efficientnet/data/source.py). Paths may be local or
`gs://` (tf.io.gfile reads both). Only `digits` and `tfds:` have splits.
"""

from __future__ import annotations

# Importing the source modules registers them.
from efficientnet.data import digits, folder_source, tfds_source, tfrecord_source  # noqa: F401
from efficientnet.data.source import SOURCES, Source


def parse_spec(spec: str) -> tuple[str, str]:
    """`scheme:argument` → (scheme, argument); the scheme must be a registered source.

    Raises:
      UnknownNameError: the scheme is not registered (the message lists the valid ones).
    """
    scheme, _, argument = spec.partition(":")
    SOURCES.get(scheme)
    return scheme, argument


def open_source(spec: str, *, data_dir: str | None = None) -> Source:
    """Opens the source named by `spec` (see the module docstring).

    Raises:
      UnknownNameError: the scheme before ':' is not a registered source.
      FileNotFoundError / ValueError: the data is missing or malformed, naming it.
    """
    scheme, argument = parse_spec(spec)
    source = SOURCES.get(scheme)(argument, data_dir=data_dir)
    source.spec = spec
    return source
