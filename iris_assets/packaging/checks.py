"""The ONNX parity check: onnxruntime reproduces scikit-learn on the test split.

Its outcome is also mirrored in the MLflow run (tag ``check.onnx_parity``, and the
numbers as ``check.onnx_parity.*`` metrics).
"""

import dagster as dg

from iris_assets.data.schema import Splits
from iris_assets.packaging.assets import OnnxModel
from iris_assets.packaging.onnx import parity
from iris_assets.tracking import MlflowRun
from iris_assets.training.assets import Classifier


@dg.asset_check(
    name="parity",
    asset="onnx_model",
    additional_ins={"model": dg.AssetIn("model"), "splits": dg.AssetIn("splits")},
    description="onnxruntime and scikit-learn give the same labels, and probabilities within "
    "the tolerance the asset checked (parity_atol per 100 trees), on the test split.",
)
def onnx_parity(onnx_model: OnnxModel, model: Classifier, splits: Splits, mlflow: MlflowRun) -> dg.AssetCheckResult:
    tolerance = onnx_model.parity_tolerance
    label_mismatches, max_difference = parity(model, onnx_model.content, splits.X_test, tolerance)
    result = dg.AssetCheckResult(
        passed=label_mismatches == 0 and max_difference <= tolerance,
        metadata={
            "label_mismatches": label_mismatches,
            "max_probability_difference": max_difference,
            "parity_tolerance": tolerance,
        },
    )
    return mlflow.record_check(
        result, "onnx_parity", label_mismatches=label_mismatches, max_probability_difference=max_difference
    )
