"""The packaging asset: the model as ONNX (original task "empacotamento").

The converted model is checked against scikit-learn on the test split before it
is published: identical labels and probabilities within ``parity_atol``; a
mismatch fails the asset.
"""

from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from iris_assets.data.schema import Splits
from iris_assets.packaging.onnx import (
    DEFAULT_PARITY_ATOL,
    ONNX_ARTIFACT,
    ONNX_LOGGED_MODEL,
    onnx_requirements,
    parity,
    to_onnx,
)
from iris_assets.tracking import MlflowRun
from iris_assets.training.assets import Classifier


class OnnxConfig(dg.Config):
    parity_atol: float = Field(
        default=DEFAULT_PARITY_ATOL,
        ge=0,
        le=1,
        description="Largest allowed difference between ONNX and scikit-learn probabilities.",
    )


@dataclass(frozen=True)
class OnnxModel:
    """The serialised ONNX model, and the tolerance its parity was checked at (the parity check reuses it)."""

    content: bytes
    parity_atol: float


class OnnxParityError(Exception):
    """The ONNX model does not reproduce scikit-learn's predictions."""


@dg.asset(group_name="iris", kinds={"onnx", "mlflow"})
def onnx_model(
    context: dg.AssetExecutionContext, config: OnnxConfig, model: Classifier, splits: Splits, mlflow: MlflowRun
) -> dg.Output[OnnxModel]:
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
        OnnxModel(onnx_bytes, config.parity_atol),
        metadata={
            "size_bytes": len(onnx_bytes),
            "test_rows_checked": len(splits.X_test),
            "max_probability_difference": dg.MetadataValue.float(max_difference),
            "parity_atol": dg.MetadataValue.float(config.parity_atol),
            "mlflow_artifact": ONNX_ARTIFACT,
            **mlflow.link(context),
        },
    )
