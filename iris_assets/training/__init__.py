"""Training: the model (a random forest by default, or another family) and the quality gate it must pass."""
