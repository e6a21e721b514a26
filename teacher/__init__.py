"""Teacher training: the shared loop on labeled data only (`python -m teacher.train`)."""
