"""The training asset: the random forest (original task "treinamento")."""

from collections.abc import Sequence
from typing import Any, Optional, Protocol, runtime_checkable

import dagster as dg
from pydantic import Field

from iris_assets.data.schema import FEATURES, Splits
from iris_assets.plots import feature_importance_png, markdown_image
from iris_assets.tracking import MlflowRun

# MLflow serialises scikit-learn models with skops, which loads only types it is
# told to trust; a random forest is made of these trees.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def model_requirements() -> list[str]:
    """The model's pip requirements, pinned to what trained it.

    Given explicitly, MLflow skips inferring them, which loads the model again in
    a subprocess (seconds per run).
    """
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "skops", "numpy", "scipy", "pandas")]


@runtime_checkable
class Classifier(Protocol):
    """What downstream assets need of the model (typed without importing scikit-learn)."""

    classes_: "Sequence[Any]"
    estimators_: "Sequence[Any]"

    def predict(self, X): ...

    def predict_proba(self, X): ...


class ModelConfig(dg.Config):
    n_estimators: int = Field(default=100, gt=0, le=10_000, description="Number of trees.")
    max_depth: Optional[int] = Field(
        default=10, gt=0, le=1_000, description="Maximum depth of a tree (null: unlimited)."
    )
    random_state: int = Field(default=42, ge=0, le=2**32 - 1, description="Seed of the forest.")


@dg.asset(group_name="iris", kinds={"scikitlearn", "mlflow"})
def model(
    context: dg.AssetExecutionContext, config: ModelConfig, splits: Splits, mlflow: MlflowRun
) -> dg.Output[Classifier]:
    """RandomForestClassifier fitted on the training split, logged with MLflow's sklearn flavour."""
    import mlflow.sklearn as mlflow_sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        random_state=config.random_state,
    )
    forest.fit(splits.X_train, splits.y_train)

    mlflow.log_params(
        {
            "n_estimators": config.n_estimators,
            "max_depth": config.max_depth,
            "random_state": config.random_state,
        }
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
    return dg.Output(
        forest,
        metadata={
            "train_rows": len(splits.X_train),
            "feature_importance": dg.MetadataValue.json(importance),
            "feature_importance_chart": dg.MetadataValue.md(markdown_image(chart, "feature importance")),
            **mlflow.link(context),
        },
    )
