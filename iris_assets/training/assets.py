"""The training asset: the random forest (original task "treinamento")."""

from collections.abc import Iterator
from typing import Optional

import dagster as dg
from pydantic import Field

from iris_assets import groups, settings
from iris_assets.data.schema import FEATURES, Splits
from iris_assets.plots import feature_importance_png, markdown_image
from iris_assets.tracking import MlflowRun
from iris_assets.training.checks import QUALITY_GATE, quality_gate_result, resolved_min_accuracy
from iris_assets.training.model import SKOPS_TRUSTED_TYPES, Classifier, build_forest, model_requirements


class ModelConfig(dg.Config):
    n_estimators: int = Field(default=100, gt=0, le=10_000, description="Number of trees.")
    max_depth: Optional[int] = Field(
        default=10, gt=0, le=1_000, description="Maximum depth of a tree (null: unlimited)."
    )
    random_state: int = Field(default=42, ge=0, le=2**32 - 1, description="Seed of the forest.")
    n_jobs: Optional[int] = Field(
        default=-1,
        ge=-1,
        le=1024,
        description="Cores used to fit and predict (-1: all; the model is the same whatever the number).",
    )
    min_accuracy: Optional[float] = Field(
        default=None,
        ge=0,
        le=1,
        description=f"Quality gate: least test accuracy. Default: $IRIS_MIN_ACCURACY, else {settings.DEFAULT_MIN_ACCURACY}.",
    )


def fit_and_log(config: ModelConfig, splits: Splits, mlflow: MlflowRun) -> tuple[Classifier, dict]:
    """Fit the forest on the training split and log it (params, sklearn model, importances);
    the forest and its materialisation metadata. The pipeline's model and every sweep trial."""
    import mlflow.sklearn as mlflow_sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    forest = build_forest(config.n_estimators, config.max_depth, config.random_state, config.n_jobs)
    forest.fit(splits.X_train, splits.y_train)
    mlflow.log_params(
        {"n_estimators": config.n_estimators, "max_depth": config.max_depth, "random_state": config.random_state}
    )
    input_example = splits.X_train.head(5)
    mlflow.log_model(
        mlflow_sklearn,
        forest,
        name="model",
        # Fitted on species names, it answers names: in pyfunc and `mlflow models serve` too.
        signature=infer_signature(input_example, pd.Series(forest.predict(input_example), name="species")),
        input_example=input_example,
        serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=model_requirements(),
    )
    importance = dict(
        sorted(
            zip(FEATURES, (float(v) for v in forest.feature_importances_), strict=True),
            key=lambda item: item[1],
            reverse=True,
        )
    )
    mlflow.log_dict(importance, "feature_importance.json")
    chart = feature_importance_png(importance)
    mlflow.log_bytes(chart, "feature_importance.png")
    metadata = {
        "train_rows": len(splits.X_train),
        "feature_importance": dg.MetadataValue.json(importance),
        "feature_importance_chart": dg.MetadataValue.md(markdown_image(chart, "feature importance")),
    }
    return forest, metadata


@dg.asset(group_name=groups.PIPELINE, kinds={"scikitlearn", "mlflow"}, check_specs=[QUALITY_GATE])
def model(context: dg.AssetExecutionContext, config: ModelConfig, splits: Splits, mlflow: MlflowRun) -> Iterator:
    """RandomForestClassifier fitted on the training split, logged with MLflow's sklearn flavour.

    Its quality gate runs here, after the model is stored: a model below it fails the step.
    """
    forest, metadata = fit_and_log(config, splits, mlflow)
    yield dg.Output(forest, metadata={**metadata, **mlflow.link(context)})
    yield quality_gate_result(forest, splits, resolved_min_accuracy(config.min_accuracy), mlflow)
