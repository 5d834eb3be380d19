"""Datasets other than Iris, each from a definition file (``datasets/<name>.yaml``) and each its own code location."""
