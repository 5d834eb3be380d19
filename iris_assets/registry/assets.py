"""The registry asset: a new version of the registered model, promoted if it beats the champion.

The ONNX model of the same run is linked to the version by the tag
``onnx_model_uri`` (a ``models:/m-...`` URI of the run's ONNX logged model) and
``onnx_artifact_uri``. The promotion decision (both scores on the same data, the
data's digest and size, the rule, promoted or not and why) is in the
materialisation's metadata, the version's tags and description, and the run.
"""

from typing import Any, Optional

import dagster as dg
from pydantic import Field

from iris_assets import groups, settings
from iris_assets.data.schema import Splits
from iris_assets.evaluation.scoring import METRICS, Metric
from iris_assets.packaging.onnx import ONNX_LOGGED_MODEL, onnx_artifact
from iris_assets.registry.promotion import CHALLENGER, CHAMPION, Evaluation, PromotionRule, promote
from iris_assets.registry.registration import register_model
from iris_assets.tracking import MlflowRun
from iris_assets.training.families import FAMILY, family_of
from iris_assets.training.model import Classifier

REGISTRY_POOL = "iris_registry"  # one promotion at a time per Dagster instance (limit 1)
_DEFAULT_RULE = PromotionRule()


class RegistryConfig(dg.Config):
    registered_model: Optional[str] = Field(
        default=None,
        description=f"Registered model name. Default: $IRIS_REGISTERED_MODEL, else "
        f"{settings.DEFAULT_REGISTERED_MODEL!r}.",
    )
    metric: Metric = Field(default=_DEFAULT_RULE.metric, description="What a candidate must beat the champion on.")
    tie_breaker: Metric = Field(default=_DEFAULT_RULE.tie_breaker, description="Decides when `metric` is equal.")
    min_improvement: float = Field(
        default=_DEFAULT_RULE.min_improvement,
        ge=0,
        le=1,
        description="How much higher than the champion's `metric` must be (0: any improvement).",
    )
    min_evaluation_rows: int = Field(
        default=_DEFAULT_RULE.min_evaluation_rows,
        ge=1,
        description="A candidate evaluated on fewer held-out rows is registered, never promoted.",
    )

    def rule(self) -> PromotionRule:
        return PromotionRule(self.metric, self.tie_breaker, self.min_improvement, self.min_evaluation_rows)


def register_and_promote(
    mlflow: MlflowRun,
    name: str,
    rule: PromotionRule,
    scores: dict[str, float],
    model: Classifier,
    splits: Splits,
    tags: dict[str, Any],
    *,
    source_run_id: Optional[str] = None,
    model_uri: Optional[str] = None,
) -> dict[str, Any]:
    """Register a model as a new version of ``name``, decide its promotion on ``splits``' test rows,
    record the decision in the bound MLflow run; the materialisation metadata.

    The model is the bound run's logged ``model``, or ``model_uri`` of ``source_run_id``
    (a sweep's best trial, registered from the sweep's parent run)."""
    import dataclasses
    import json

    import mlflow.sklearn as mlflow_sklearn

    # The candidate must predict every class of its own dataset (Iris: the species).
    rule = dataclasses.replace(rule, classes=tuple(splits.class_names))
    source_run_id = source_run_id or mlflow.run_id
    family = family_of(model)
    version = register_model(
        mlflow,
        name,
        tags={
            "accuracy": scores["accuracy"],
            "f1_score": scores["f1_score"],
            FAMILY: family.name,
            "onnx_artifact_uri": f"runs:/{source_run_id}/{onnx_artifact(family.name, splits.dataset)}",
            "features": json.dumps(splits.features),
            **tags,
        },
        model_uri=model_uri,
        run_id=source_run_id,
        dataset=splits.dataset,
    )
    decision = promote(
        mlflow.client,
        mlflow.tracking_uri,
        name,
        str(version.version),
        classes=list(model.classes_),
        candidate_scores=scores,
        evaluation=Evaluation(splits.X_test, splits.y_test, splits.evaluation_digest),
        load_model=lambda uri: mlflow.load_model(mlflow_sklearn, uri),
        rule=rule,
        family=family.name,
    )
    if decision.champion_scores:
        mlflow.log_metrics({f"champion.{k}": v for k, v in decision.champion_scores.items()})
    mlflow.set_tags(
        {
            "registered_model": f"{name}/{version.version}",
            "promoted": decision.promoted,
            "promotion_reason": decision.reason,
        }
    )
    champion_scores = decision.champion_scores or {}
    comparison: dict[str, dict[str, float | None]] = {
        metric: {"candidate": decision.candidate_scores.get(metric), "champion": champion_scores.get(metric)}
        for metric in METRICS
    }
    return {
        "registered_model": name,
        "version": int(version.version),
        FAMILY: family.name,
        "alias": CHAMPION if decision.promoted else CHALLENGER,
        "promoted": decision.promoted,
        "decision": decision.summary(),
        "compared_with": f"v{decision.champion_before}" if decision.champion_before else "none",
        "champion_version": decision.champion_after or "none",
        "scores_on_the_same_data": dg.MetadataValue.json(comparison),
        "evaluation_rows": decision.evaluation_rows,
        "evaluation_digest": decision.evaluation_digest,
        "promotion_rule": str(decision.rule),
        "model_uri": f"models:/{name}/{version.version}",
    }


@dg.asset(group_name=groups.PIPELINE, kinds={"mlflow"}, deps=["onnx_model"], pool=REGISTRY_POOL)
def registered_model(
    context: dg.AssetExecutionContext,
    config: RegistryConfig,
    metrics: dict,
    model: Classifier,
    splits: Splits,
    mlflow: MlflowRun,
) -> dg.MaterializeResult:
    """A new version of the registered model; `champion` moves to it if it beats the champion on the same data."""
    return registered_model_result(context, config, settings.current().registered_model, metrics, model, splits, mlflow)


def registered_model_result(
    context: dg.AssetExecutionContext,
    config: RegistryConfig,
    default_name: str,
    metrics: dict,
    model: Classifier,
    splits: Splits,
    mlflow: MlflowRun,
) -> dg.MaterializeResult:
    """What a ``registered_model`` asset returns (Iris's, and each dataset's): the registry decision, to
    ``config.registered_model`` else ``default_name``."""
    metadata = register_and_promote(
        mlflow,
        config.registered_model or default_name,
        config.rule(),
        metrics,
        model,
        splits,
        tags={"dagster_run_id": context.run.run_id, "onnx_model_uri": mlflow.logged_model_uri(ONNX_LOGGED_MODEL)},
    )
    return dg.MaterializeResult(metadata={**metadata, **mlflow.link(context)})
