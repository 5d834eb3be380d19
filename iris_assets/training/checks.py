"""The quality gate: a model must reach a least test accuracy before it is packaged.

Its outcome is also mirrored in the MLflow run (tag ``check.quality_gate``, and the
accuracy and threshold as ``check.quality_gate.*`` metrics).
"""

from typing import Optional

import dagster as dg
from pydantic import Field

from iris_assets import settings
from iris_assets.data.schema import Splits
from iris_assets.evaluation.scoring import scores
from iris_assets.tracking import MlflowRun
from iris_assets.training.assets import Classifier


class QualityGateConfig(dg.Config):
    min_accuracy: Optional[float] = Field(
        default=None,
        ge=0,
        le=1,
        description=f"Least test accuracy a model needs to be packaged. Default: "
        f"$IRIS_MIN_ACCURACY, else {settings.DEFAULT_MIN_ACCURACY}.",
    )


def resolved_min_accuracy(config: QualityGateConfig) -> float:
    return config.min_accuracy if config.min_accuracy is not None else settings.current().min_accuracy


@dg.asset_check(
    name="quality_gate",
    asset="model",
    additional_ins={"splits": dg.AssetIn("splits")},
    blocking=True,
    description="Quality gate: test accuracy at least min_accuracy. Blocking: a model that "
    "fails it is never packaged to ONNX.",
)
def model_quality_gate(
    config: QualityGateConfig, model: Classifier, splits: Splits, mlflow: MlflowRun
) -> dg.AssetCheckResult:
    threshold = resolved_min_accuracy(config)
    accuracy = scores(splits.y_test, model.predict(splits.X_test))["accuracy"]
    result = dg.AssetCheckResult(
        passed=accuracy >= threshold,
        metadata={"accuracy": accuracy, "min_accuracy": threshold},
        description=f"accuracy {accuracy:.4f} {'>=' if accuracy >= threshold else '<'} {threshold}",
    )
    return mlflow.record_check(result, "quality_gate", accuracy=accuracy, min_accuracy=threshold)
