"""Robustness benchmarks as reported by Noisy Student (docs/robustness.md).

  metrics            pure functions: CE, mCE, relative CE/mCE, flip probability, top-5
                     distance, FR/mFR/mT5D, calibration errors; AlexNet constants
  corruptions        the ImageNet-C corruptions as NumPy/SciPy functions, registered by name
  corruption_report  any dataset (digits included) under the built-in corruptions, several
                     models on the same corrupted images: `corruption_report(...)`
  imagenet_c         the published files or TFDS `imagenet2012_corrupted` (regenerated, not
                     comparable), normalised by AlexNet
  imagenet_a         the published files or TFDS `imagenet_a`, the 200-class logit
                     restriction, calibration
  imagenet_r         the published files, scored like ImageNet-A over its own 200 classes
  imagenet_p         perturbation sequences as published (.mp4, decoded by PyAV) or .npy, flip rates
  imagenet_classes   wnid → 1000-way class index, from the list TFDS ships
  published_files    the published folder layouts: listing, checks, the parallel tf.data stream
  inference          image views and batches; the logits come from the project's one
                     inference path, efficientnet/model/inference.py
  report             JSON, markdown and plot writers for every result

Entry points: `corruption_report.corruption_report` (any dataset, several models, e.g. every
round of an iteration), `imagenet_c.imagenet_c_report`, `imagenet_a.imagenet_a_report`,
`imagenet_c.imagenet_c_files_report`, `imagenet_r.imagenet_r_report`,
`imagenet_p.imagenet_p_report`, and `report.write_report` / `report.markdown` for any of
their results. The CLI is `python -m pipelines.robustness`.
"""

from efficientnet.util.console import quiet_native_logs

quiet_native_logs()  # before any module of this package imports TensorFlow; a no-op unless `python -m`
