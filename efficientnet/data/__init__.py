"""Data: dataset sources, crops, RandAugment and the tf.data input pipelines."""
