"""Packaging: the model as ONNX, converted, checked for parity, logged."""
