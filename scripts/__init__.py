"""The repository's scripts, importable from its root (``python -m scripts.bench.<name>``)."""
