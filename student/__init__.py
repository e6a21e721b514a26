"""Noisy Student training: the shared loop plus a pseudo-labeled stream and noise (`python -m student.train`)."""
