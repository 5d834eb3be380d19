"""Converting a fitted forest to ONNX, running it, and measuring its parity with scikit-learn."""

from typing import Any

ONNX_ARTIFACT = "onnx_model/iris_random_forest.onnx"  # where the original pipeline put it
ONNX_LOGGED_MODEL = "onnx"  # the same model through MLflow's onnx flavour (registry, pyfunc)
# Largest allowed difference between ONNX (float32) and scikit-learn (float64) class
# probabilities; the asset's config default and its parity check's threshold.
DEFAULT_PARITY_ATOL = 1e-5


def to_onnx(model: Any, n_features: int) -> bytes:
    """Convert a fitted classifier; outputs are a label tensor and a probability matrix."""
    import numpy as np
    from skl2onnx import to_onnx as skl_to_onnx

    # zipmap=False: probabilities as a float matrix rather than a list of dicts.
    onnx_model = skl_to_onnx(
        model,
        np.zeros((1, n_features), dtype=np.float32),
        options={id(model): {"zipmap": False}},
    )
    return onnx_model.SerializeToString()


def onnx_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "onnx", "onnxruntime", "numpy", "pandas")]


def onnx_session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # fastest for this model size on small machines
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def parity(model: Any, onnx_bytes: bytes, X: Any) -> tuple[int, float]:
    """(number of differing labels, largest probability difference) on ``X``."""
    import numpy as np

    session = onnx_session(onnx_bytes)
    features = np.asarray(X, dtype=np.float32)
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: features})
    sk_labels = model.predict(X)
    sk_probabilities = model.predict_proba(X)
    return int((labels != sk_labels).sum()), float(np.abs(probabilities - sk_probabilities).max())
