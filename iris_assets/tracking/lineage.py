"""Which MLflow run produced each upstream asset a step read, when that was another run.

A partial materialisation (say ``metrics`` alone) reads the model of an earlier
run; the MLflow run records where it came from as ``upstream.<asset>.*`` tags.
"""

import dagster as dg

from iris_assets.tracking.tags import RUN_ID_METADATA_KEY, UPSTREAM_TAG_PREFIX


def upstream_runs(context: dg.AssetExecutionContext, mlflow_run_id: str) -> dict[str, str]:
    """``upstream.<asset>.mlflow_run_id`` / ``.dagster_run_id`` tags for inputs from other runs."""
    lineage: dict[str, str] = {}
    for key in context.assets_def.keys_by_input_name.values():
        event = context.instance.get_latest_materialization_event(key)
        if event is None or event.asset_materialization is None or event.asset_materialization.partition:
            continue  # nothing yet; or one partition of many (a sweep's trials), not "the" upstream run
        upstream = event.asset_materialization.metadata.get(RUN_ID_METADATA_KEY)
        if upstream is not None and upstream.value != mlflow_run_id:
            name = key.to_user_string()
            lineage[f"{UPSTREAM_TAG_PREFIX}{name}.mlflow_run_id"] = str(upstream.value)
            lineage[f"{UPSTREAM_TAG_PREFIX}{name}.dagster_run_id"] = event.run_id
    return lineage
