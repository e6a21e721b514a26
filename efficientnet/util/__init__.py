"""Plumbing shared by every layer: registries, atomic file I/O, CLI errors, console."""
