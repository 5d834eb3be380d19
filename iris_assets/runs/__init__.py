"""Runs whose worker died: detection, closing, and the `iris-runs` command."""
