"""The executor of every job (and the UI's implicit asset job), chosen per run by run config.

    execution: {config: {in_process: {}}}            # the default: one process, ~7 s for this graph
    execution: {config: {multiprocess: {max_concurrent: 4}}}   # a process per step, one machine (forked)
    execution: {config: {celery: {}}}                 # steps on Celery workers (iris-worker), many machines

The keys of the first two are Dagster's ``multi_or_in_process_executor``'s, with one
default of our own: a multiprocess run that names no ``start_method`` forks its step
processes from a forkserver that has already imported what every step imports
(``STEP_PRELOAD``), instead of spawning each step as a fresh interpreter that imports
it all again. ``celery``
takes dagster-celery's, with the broker read from ``$IRIS_CELERY_BROKER_URL``, results
kept in the instance's PostgreSQL, and the worker-loss settings of ``execution.celery``
filled in. Every mode is wrapped in the
tracking package's ``SettlingExecutor``, so the MLflow run is settled by the run
worker whatever happened to the step processes or workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
from dagster_celery import celery_executor

from iris_assets import dagster_private, settings
from iris_assets.execution import celery
from iris_assets.execution.settling import SettlingExecutor

_LOCAL = dg.multi_or_in_process_executor
_LOCAL_MODES: Mapping[str, dg.Field] = _LOCAL.config_schema.config_type.fields  # type: ignore[union-attr]
# dagster-celery's keys, but `backend` without its "rpc://" default, so that an unset
# backend means ours (settings.resolved_celery_result_backend): results that survive a
# broker restart.
_CELERY_FIELDS: Mapping[str, dg.Field] = {
    **celery_executor.config_schema.config_type.fields,  # type: ignore[union-attr]
    "backend": dg.Field(
        dg.Noneable(dg.StringSource),
        is_required=False,
        description="Celery's result backend. Default: $IRIS_CELERY_RESULT_BACKEND, else the instance's PostgreSQL.",
    ),
}
_MODES = {**_LOCAL_MODES, "celery": dg.Field(dg.Shape(_CELERY_FIELDS))}


# What a step process imports anyway (measured with a profile of each step), imported
# once in the forkserver; the last module freezes it all (execution.heap). A module that
# fails to import is skipped by multiprocessing, never an error.
STEP_PRELOAD = [
    "iris_assets.definitions",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.onnx",
    "mlflow.data.pandas_dataset",
    "mlflow.models.signature",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "sklearn.ensemble",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.datasets",
    "skops.io",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "upath",
    *dagster_private.STEP_STORAGE_MODULES,
    "iris_assets.execution.forkserver_ready",
]


def _create(init_context: dg.InitExecutorContext) -> dg.Executor:
    ((mode, chosen),) = init_context.executor_config.items()
    mode_config: dict[str, Any] = dict(chosen or {})  # type: ignore[call-overload]
    config: dict[str, Any]
    if mode == "celery":
        definition, config = celery_executor, celery.executor_config(mode_config)
    elif mode == "multiprocess" and not mode_config.get("start_method"):
        forked = {"forkserver": {"preload_modules": STEP_PRELOAD}}
        definition, config = _LOCAL, {mode: {**mode_config, "start_method": forked}}
    else:
        definition, config = _LOCAL, {mode: mode_config}
    inner = definition.executor_creation_fn(  # type: ignore[misc]
        dg.InitExecutorContext(
            job=init_context.job,
            executor_def=definition,
            executor_config=config,
            instance=init_context.instance,
        )
    )
    return SettlingExecutor(inner)


def _requirements(config: Mapping[str, object]) -> Sequence[dg.ExecutorRequirement]:
    ((mode, mode_config),) = config.items()
    if mode == "celery":
        return celery_executor.get_requirements(mode_config)  # type: ignore[arg-type]
    return _LOCAL.get_requirements({mode: mode_config})


iris_executor = dg.ExecutorDefinition(
    name="in_process_multiprocess_or_celery",
    # The default mode: $IRIS_DEFAULT_EXECUTOR (a deployment whose runs all go to its workers), else in-process.
    config_schema=dg.Field(dg.Selector(_MODES), default_value={settings.current().default_executor: {}}),
    executor_creation_fn=_create,
    requirements=_requirements,
    description="In-process by default; `multiprocess: {}` runs a process per step; `celery: {}` runs steps on "
    "Celery workers (`iris-worker`).",
)
