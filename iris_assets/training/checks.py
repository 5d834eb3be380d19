"""The quality gate: a model must reach a least test accuracy before it is evaluated and packaged.

It runs in the ``model`` step (a blocking check of ``model``): a model that fails
it fails its step, so nothing downstream runs.

Its outcome is also mirrored in the MLflow run (tag ``check.quality_gate``, and the
accuracy and threshold as ``check.quality_gate.*`` metrics).
"""

from typing import Optional

import dagster as dg

from iris_assets import settings
from iris_assets.data.schema import Splits
from iris_assets.evaluation.scoring import scores
from iris_assets.tracking import MlflowRun
from iris_assets.training.model import Classifier


def quality_gate_spec(asset_key: "str | dg.AssetKey" = "model") -> dg.AssetCheckSpec:
    """The gate on ``asset_key``: Iris's ``model``, or a dataset's ``<name>/model``."""
    return dg.AssetCheckSpec(
        "quality_gate",
        asset=asset_key,
        blocking=True,
        description="Quality gate: test accuracy at least min_accuracy. Blocking: a model that fails it is "
        "never evaluated further nor packaged to ONNX.",
    )


QUALITY_GATE = quality_gate_spec()


def resolved_min_accuracy(configured: Optional[float]) -> float:
    return configured if configured is not None else settings.current().min_accuracy


def quality_gate_result(model: Classifier, splits: Splits, threshold: float, mlflow: MlflowRun) -> dg.AssetCheckResult:
    accuracy = scores(splits.y_test, model.predict(splits.X_test))["accuracy"]
    result = dg.AssetCheckResult(
        check_name=QUALITY_GATE.name,
        passed=accuracy >= threshold,
        metadata={"accuracy": accuracy, "min_accuracy": threshold},
        description=f"accuracy {accuracy:.4f} {'>=' if accuracy >= threshold else '<'} {threshold}",
    )
    return mlflow.record_check(result, "quality_gate", accuracy=accuracy, min_accuracy=threshold)
