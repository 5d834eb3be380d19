"""Every private Dagster and MLflow API the binding uses, and why no public one serves.

Private names can change in any release. Each one the binding uses is imported here
and nowhere else in ``iris_assets/tracking/`` (the project's own, for its executors
and workers, are in ``iris_assets/dagster_private.py``, which re-exports these), and
``iris_assets_tests/test_dagster_private.py`` checks that each still exists and
behaves as the binding relies on: an upgrade that changes one fails that test,
naming it, instead of failing runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# The implicit job of every asset: what "Materialize all" in the UI and `dg launch --assets`
# run. Its name means nothing to a user, so MLflow runs of it are named otherwise (election).
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME

# Tags Dagster puts on runs, matched on runs Dagster itself wrote (so a renamed tag
# must fail a test, not go unnoticed); Dagster exports no constant for them:
# - RESUME_RETRY_TAG, ASSET_RESUME_RETRY_TAG: a run that re-executes its parent from
#   failure (the UI's "Re-execute from failure", `--from-failure`, automatic retries);
# - BACKFILL_ID_TAG, PARTITION_NAME_TAG: every run of a backfill and of a partition,
#   copied onto the MLflow run (what started it).
from dagster._core.storage.tags import (
    ASSET_RESUME_RETRY_TAG,
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
    RESUME_RETRY_TAG,
)

if TYPE_CHECKING:
    import dagster as dg

__all__ = [
    "ASSET_RESUME_RETRY_TAG",
    "BACKFILL_ID_TAG",
    "IMPLICIT_ASSET_JOB_NAME",
    "PARTITION_NAME_TAG",
    "RESUME_RETRY_TAG",
    "active_run_stack",
    "engine_event_data",
    "fluent_module",
    "from_failure_step_keys",
]


def engine_event_data(metadata: Mapping[str, dg.MetadataValue]) -> object:
    """The payload of an engine event carrying ``metadata``.

    The binding announces MLflow run candidates as engine events in the Dagster
    run's event log, the one store every executor and host shares and orders
    (``DagsterInstance.report_engine_event``); its metadata argument is an
    ``EngineEventData``, which Dagster does not export.
    """
    from dagster._core.events import EngineEventData

    return EngineEventData(metadata)


def from_failure_step_keys(instance: dg.DagsterInstance, parent: dg.DagsterRun) -> set[str]:
    """The steps Dagster runs when re-executing ``parent`` from failure.

    ``execute_job(reexecution_options=ReexecutionOptions.from_failure(...))`` does not
    tag the new run as a resume (the UI and CLI do), so the binding compares a
    re-execution's steps with these to know it continues the parent's MLflow run.
    ``execute_job`` derives the steps with this same function, internally; no public
    API returns them.
    """
    from dagster._core.execution.plan.state import KnownExecutionState

    steps, _ = KnownExecutionState.build_resume_retry_reexecution(instance, parent)
    return set(steps)


def fluent_module() -> Any:
    """``mlflow.tracking.fluent``: the module whose ``start_run`` / ``end_run`` MLflow's own code calls.

    MLflow's fluent functions look ``start_run`` up in this module (``_get_or_start_run``)
    and its exit hook and ``ActiveRun.__exit__`` look up ``end_run`` there; the binding
    wraps both there and on the ``mlflow`` package (``tracking.fluent``). The module's
    path is public (documented as ``mlflow.tracking.fluent``), those lookups are not.
    """
    import mlflow.tracking.fluent as fluent

    return fluent


def active_run_stack() -> list:
    """This thread's stack of active MLflow runs (``mlflow.active_run()`` is its top).

    MLflow keeps it in the private ``_active_run_stack`` (a thread-local since 2.x); the
    only public way onto it is ``mlflow.start_run``, which resumes a run through the
    store (a request, a status write) and ends it when its block exits: the binding puts
    its own lazy entry there instead (``tracking.fluent``).
    """
    return fluent_module()._active_run_stack.get()
