"""The job, and the jobs as reconstructable targets."""

import dagster as dg

from iris_assets import dagster_private, groups

iris_pipeline = dg.define_asset_job(
    groups.PIPELINE_JOB,
    selection=dg.AssetSelection.groups(groups.PIPELINE),
    description="The whole Iris pipeline: raw data, splits, model, metrics and the ONNX model.",
    # Dagster starts a job's own loggers only when run config names them: named here, so a
    # terminal run prints what console.py says (run config can still choose DEBUG).
    config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
)


# Reconstructable targets (``dg.reconstructable(iris_pipeline_job)``), for executing a
# job from Python where step processes must import it again: tests, benchmarks, and
# `iris-runs reexecute`.
def iris_pipeline_job() -> dg.JobDefinition:
    from iris_assets.definitions import defs

    return defs.resolve_job_def(groups.PIPELINE_JOB)


def asset_job() -> dg.JobDefinition:
    """The implicit job of every asset: what "Materialize all" in the UI and `dg launch` run."""
    from iris_assets.definitions import defs

    return defs.resolve_implicit_global_asset_job_def()


RECONSTRUCTABLE_JOBS = {groups.PIPELINE_JOB: iris_pipeline_job, dagster_private.IMPLICIT_ASSET_JOB_NAME: asset_job}
