"""Noisy Student training: the shared loop plus a pseudo-labeled stream and noise (`python -m student.train`)."""

from efficientnet.util.console import quiet_native_logs

quiet_native_logs()  # before any module of this package imports TensorFlow; a no-op unless `python -m`
