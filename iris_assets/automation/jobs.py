"""The job and the executor every job (and the UI's implicit asset job) runs on."""

import dagster as dg

from iris_assets.tracking.executor import settling

# Dagster's own multi_or_in_process_executor, with in-process as the default: this
# graph takes ~7 s in one process and ~25 s with a process per step. The run config
# still picks either, with the same keys:
#   execution: {config: {multiprocess: {max_concurrent: 4}}}   or   {in_process: {}}
in_process_or_multiprocess_executor = settling(
    dg.multi_or_in_process_executor,
    name="in_process_or_multiprocess",
    description="In-process by default; `multiprocess: {}` runs one process per step.",
    default_config={"in_process": {}},
)

iris_pipeline = dg.define_asset_job(
    "iris_pipeline",
    selection=dg.AssetSelection.groups("iris"),
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
