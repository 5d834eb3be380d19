"""Jobs and the executor every job (and the UI's implicit asset job) runs on."""

from collections.abc import Iterator

import dagster as dg
from dagster._core.executor.base import Executor
from dagster._core.executor.multiprocess import MultiprocessExecutor


class _SettlingExecutor(Executor):
    """An executor that, after its last step, ends the MLflow run a dead step left RUNNING.

    Step processes end the MLflow run themselves (resource teardown); one killed
    mid-step cannot. The multiprocess executor's parent (the run worker) outlives
    them all, so it settles the run from the event log once they are gone.
    """

    def __init__(self, inner: Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        from iris_assets.mlflow_run import settle_after_steps

        try:
            yield from self._inner.execute(plan_context, execution_plan)
        finally:
            try:
                settle_after_steps(plan_context.instance, plan_context.dagster_run, plan_context.log)
            except Exception as error:  # the tracking server may be what failed the run
                plan_context.log.warning(f"Could not end the MLflow run from the run worker: {error}")


def _create_executor(init_context: dg.InitExecutorContext) -> Executor:
    executor = dg.multi_or_in_process_executor.executor_creation_fn(init_context)
    # In one process the resource's teardown always runs; only step processes can die alone.
    return _SettlingExecutor(executor) if isinstance(executor, MultiprocessExecutor) else executor


# Dagster's own multi_or_in_process_executor, with in-process as the default: this
# graph takes ~7 s in one process and ~25 s with a process per step. The run config
# still picks either, with the same keys:
#   execution: {config: {multiprocess: {max_concurrent: 4}}}   or   {in_process: {}}
in_process_or_multiprocess_executor = dg.ExecutorDefinition(
    name="in_process_or_multiprocess",
    config_schema=dg.Field(
        dg.multi_or_in_process_executor.config_schema.config_type,
        default_value={"in_process": {}},
    ),
    executor_creation_fn=_create_executor,
    requirements=dg.multi_or_in_process_executor.get_requirements,
    description="In-process by default; `multiprocess: {}` runs one process per step.",
)

iris_pipeline = dg.define_asset_job(
    "iris_pipeline",
    selection=dg.AssetSelection.groups("iris"),
    description="The whole Iris pipeline: raw data, splits, model, metrics and the ONNX model.",
)
