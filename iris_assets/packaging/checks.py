"""The ONNX parity check: onnxruntime reproduces scikit-learn on the test split.

It runs in the ``onnx_model`` step, which measures parity before publishing the
model. Its outcome is also mirrored in the MLflow run (tag ``check.onnx_parity``, and
the numbers as ``check.onnx_parity.*`` metrics).
"""

import dagster as dg

from iris_assets.tracking import MlflowRun


def parity_spec(asset_key: "str | dg.AssetKey" = "onnx_model") -> dg.AssetCheckSpec:
    """The parity check on ``asset_key``: Iris's ``onnx_model``, or a dataset's ``<name>/onnx_model``."""
    return dg.AssetCheckSpec(
        "parity",
        asset=asset_key,
        description="onnxruntime and scikit-learn give the same labels, and probabilities within the "
        "tolerance parity_atol sets for the model's number of trees, on the test split.",
    )


PARITY = parity_spec()


def parity_result(
    label_mismatches: int, max_difference: float, tolerance: float, mlflow: MlflowRun
) -> dg.AssetCheckResult:
    result = dg.AssetCheckResult(
        check_name=PARITY.name,
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
