"""The job, and the jobs as reconstructable targets."""

import dagster as dg

from iris_assets import groups

iris_pipeline = dg.define_asset_job(
    "iris_pipeline",
    selection=dg.AssetSelection.groups(groups.PIPELINE),
    description="The whole Iris pipeline: raw data, splits, model, metrics and the ONNX model.",
)


# Reconstructable targets (``dg.reconstructable(iris_pipeline_job)``), for executing a
# job from Python where step processes must import it again: tests, benchmarks, and
# `iris-runs reexecute`.
def iris_pipeline_job() -> dg.JobDefinition:
    from iris_assets.definitions import defs

    return defs.resolve_job_def("iris_pipeline")


def asset_job() -> dg.JobDefinition:
    """The implicit job of every asset: what "Materialize all" in the UI and `dg launch` run."""
    from iris_assets.definitions import defs

    return defs.resolve_implicit_global_asset_job_def()


RECONSTRUCTABLE_JOBS = {"iris_pipeline": iris_pipeline_job, "__ASSET_JOB": asset_job}
