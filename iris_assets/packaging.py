"""Packaging: the model as ONNX (original task "empacotamento").

The converted model is checked against scikit-learn on the test split before it
is published: identical labels and probabilities within ``parity_atol``; a
mismatch fails the asset.
"""

import dagster as dg
from pydantic import Field

from iris_assets.data import Splits
from iris_assets.mlflow_run import MlflowRun
from iris_assets.training import Classifier

ONNX_ARTIFACT = "onnx_model/iris_random_forest.onnx"  # where the original pipeline put it
ONNX_LOGGED_MODEL = "onnx"  # the same model through MLflow's onnx flavour (registry, pyfunc)


class OnnxConfig(dg.Config):
    parity_atol: float = Field(
        default=1e-5,
        ge=0,
        le=1,
        description="Largest allowed difference between ONNX and scikit-learn probabilities.",
    )


class OnnxParityError(Exception):
    """The ONNX model does not reproduce scikit-learn's predictions."""


def to_onnx(model, n_features: int) -> bytes:
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


def onnx_session(onnx_bytes: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # fastest for this model size on small machines
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def parity(model, onnx_bytes: bytes, X) -> tuple[int, float]:
    """(number of differing labels, largest probability difference) on ``X``."""
    import numpy as np

    session = onnx_session(onnx_bytes)
    features = np.asarray(X, dtype=np.float32)
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: features})
    sk_labels = model.predict(X)
    sk_probabilities = model.predict_proba(X)
    return int((labels != sk_labels).sum()), float(np.abs(probabilities - sk_probabilities).max())


@dg.asset(group_name="iris", kinds={"onnx", "mlflow"})
def onnx_model(
    context: dg.AssetExecutionContext, config: OnnxConfig, model: Classifier, splits: Splits, mlflow: MlflowRun
) -> dg.Output[bytes]:
    """The model converted with skl2onnx and verified with onnxruntime on the test split."""
    onnx_bytes = to_onnx(model, splits.X_test.shape[1])
    label_mismatches, max_difference = parity(model, onnx_bytes, splits.X_test)
    if label_mismatches or max_difference > config.parity_atol:
        raise OnnxParityError(
            f"ONNX model disagrees with scikit-learn on the test split: {label_mismatches} "
            f"different labels, largest probability difference {max_difference:.3g} "
            f"(allowed: parity_atol={config.parity_atol})"
        )
    mlflow.log_bytes(onnx_bytes, ONNX_ARTIFACT)
    import mlflow.onnx as mlflow_onnx
    import onnx

    mlflow.log_model(
        mlflow_onnx,
        onnx.load_from_string(onnx_bytes),
        name=ONNX_LOGGED_MODEL,
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=onnx_requirements(),
    )
    return dg.Output(
        onnx_bytes,
        metadata={
            "size_bytes": len(onnx_bytes),
            "test_rows_checked": len(splits.X_test),
            "max_probability_difference": dg.MetadataValue.float(max_difference),
            "mlflow_artifact": ONNX_ARTIFACT,
            **mlflow.link(context),
        },
    )
