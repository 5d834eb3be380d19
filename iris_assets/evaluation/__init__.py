"""Evaluation: how well the model does on the held-out split."""
