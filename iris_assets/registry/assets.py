"""The registry asset: a new version of the registered model, promoted if it is the best.

The ONNX model of the same run is linked to the version by the tag
``onnx_model_uri`` (a ``models:/m-...`` URI of the run's ONNX logged model) and
``onnx_artifact_uri``.
"""

from typing import Optional

import dagster as dg
from pydantic import Field

from iris_assets import settings
from iris_assets.packaging.onnx import ONNX_ARTIFACT, ONNX_LOGGED_MODEL
from iris_assets.registry.promotion import CHALLENGER, CHAMPION, promote
from iris_assets.registry.registration import register_model
from iris_assets.tracking import MlflowRun


class RegistryConfig(dg.Config):
    registered_model: Optional[str] = Field(
        default=None,
        description=f"Registered model name. Default: $IRIS_REGISTERED_MODEL, else "
        f"{settings.DEFAULT_REGISTERED_MODEL!r}.",
    )


@dg.asset(group_name="iris", kinds={"mlflow"}, deps=["onnx_model"])
def registered_model(
    context: dg.AssetExecutionContext, config: RegistryConfig, metrics: dict, mlflow: MlflowRun
) -> dg.MaterializeResult:
    """A new version of the registered model; `champion` moves to it if it scores at least as well."""
    name = config.registered_model or settings.current().registered_model
    version = register_model(
        mlflow,
        name,
        tags={
            "accuracy": metrics["accuracy"],
            "f1_score": metrics["f1_score"],
            "dagster_run_id": context.run.run_id,
            "onnx_artifact_uri": f"runs:/{mlflow.run_id}/{ONNX_ARTIFACT}",
            "onnx_model_uri": mlflow.logged_model_uri(ONNX_LOGGED_MODEL),
        },
    )
    champion = promote(mlflow.client, name, version)
    promoted = champion == str(version.version)
    mlflow.set_tags({"registered_model": f"{name}/{version.version}", "promoted": promoted})
    return dg.MaterializeResult(
        metadata={
            "registered_model": name,
            "version": int(version.version),
            "alias": CHAMPION if promoted else CHALLENGER,
            "champion_version": int(champion),
            "model_uri": f"models:/{name}/{version.version}",
            **mlflow.link(context),
        }
    )
