"""Every private Dagster API the project uses, and why no public one serves.

Private names can change in any Dagster release. Each one is imported here and
nowhere else, and ``iris_assets_tests/test_dagster_private.py`` checks that each
still exists and behaves as the binding relies on, so an upgrade that changes one
fails that test, naming it, instead of failing runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

# The implicit job of every asset: what "Materialize all" in the UI and `dg launch --assets`
# run. Its name means nothing to a user, so MLflow runs of it are named otherwise (election).
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME

# Tags Dagster puts on runs, matched on runs Dagster itself wrote (so a renamed tag
# must fail a test, not go unnoticed); Dagster exports no constant for them:
# - RESUME_RETRY_TAG, ASSET_RESUME_RETRY_TAG: a run that re-executes its parent from
#   failure (the UI's "Re-execute from failure", `--from-failure`, automatic retries);
# - BACKFILL_ID_TAG, PARTITION_NAME_TAG: every run of a backfill (its id: the IO manager
#   reads the values its own backfill made) and of a partition (its key: a sweep's trial).
from dagster._core.storage.tags import (
    ASSET_RESUME_RETRY_TAG,
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
    RESUME_RETRY_TAG,
)

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

# The modules a step process imports to open the instance's sqlite storages, named for
# the multiprocess forkserver to import once (execution.executor.STEP_PRELOAD); Dagster
# names no public module for them. A renamed one is skipped by the forkserver (slower
# steps, not failed ones), and test_dagster_private fails naming it.
STEP_STORAGE_MODULES = [
    "dagster._core.storage.sqlite_storage",
    "dagster._core.storage.runs",
    "dagster._core.storage.event_log",
    "dagster._core.storage.schedules",
    "dagster._core.storage.local_compute_log_manager",
]

__all__ = [
    "ASSET_RESUME_RETRY_TAG",
    "IMPLICIT_ASSET_JOB_NAME",
    "BACKFILL_ID_TAG",
    "PARTITION_NAME_TAG",
    "STEP_STORAGE_MODULES",
    "RESUME_RETRY_TAG",
    "celery_step",
    "engine_event_data",
    "from_failure_step_keys",
    "start_run_workers_with",
]


@dataclass(frozen=True)
class CeleryStep:
    """What a dagster-celery step message names: the instance, the run and the step."""

    instance_ref: InstanceRef
    run_id: str
    step_key: str


def celery_step(packed: Mapping[str, object]) -> CeleryStep:
    """The run and step of a dagster-celery ``execute_plan`` message (its packed ``ExecuteStepArgs``).

    A worker must know them before it executes a step (``execution.step_task`` drops a
    step whose run has ended); dagster-celery's task unpacks them only inside its body,
    and the message's type lives in ``dagster._grpc.types``.
    """
    from dagster._grpc.types import ExecuteStepArgs
    from dagster._serdes import unpack_value

    args = unpack_value(packed, as_type=ExecuteStepArgs)  # type: ignore[arg-type]
    (step_key,) = args.step_keys_to_execute or [""]
    if args.instance_ref is None:
        raise ValueError(f"A step message of run {args.run_id} names no Dagster instance")
    return CeleryStep(args.instance_ref, args.run_id, step_key)


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


def start_run_workers_with(context: Callable[[], BaseContext]) -> bool:
    """Make the code server running in this process start run workers from ``context()``.

    The gRPC code server (``DagsterApiServer``, which DefaultRunLauncher asks to start
    every run of a deployment) starts each run worker from the multiprocessing context
    its constructor stores as ``self._mp_ctx``, always ``get_context("spawn")``; no
    option, setting or public API chooses another. A property on the class answers for
    that attribute whatever the constructor stored. Only in a process that is a code
    server (its module is then imported already; nothing is imported here): returns
    whether it was one.
    """
    server = sys.modules.get("dagster._grpc.server")
    if server is None:
        return False
    chosen: list[BaseContext] = []

    def get(_server: object) -> BaseContext:
        if not chosen:
            chosen.append(context())
        return chosen[0]

    server.DagsterApiServer._mp_ctx = property(get, lambda _server, _spawn: None)
    return True
