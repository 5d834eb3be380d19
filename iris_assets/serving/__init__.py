"""Serving: predictions from the packaged model (``IrisOnnxPredictor``, the `iris-predict` command)."""

from iris_assets.serving.predictor import IrisOnnxPredictor, PredictionError, Predictions

__all__ = ["IrisOnnxPredictor", "PredictionError", "Predictions"]
