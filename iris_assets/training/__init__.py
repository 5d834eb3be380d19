"""Training: the random forest and the quality gate it must pass."""
