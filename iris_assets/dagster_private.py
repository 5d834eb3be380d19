"""Every private Dagster API the project uses, and why no public one serves.

Private names can change in any Dagster release. Each one is imported here and
nowhere else, and ``iris_assets_tests/test_dagster_private.py`` checks that each
still exists and behaves as the binding relies on, so an upgrade that changes one
fails that test, naming it, instead of failing runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# What the MLflow binding uses (it imports nothing else of the project), shared with the
# project's executors, IO manager and workers: defined in the binding's own fence.
from iris_assets.tracking.private import (
    ASSET_RESUME_RETRY_TAG,
    BACKFILL_ID_TAG,
    IMPLICIT_ASSET_JOB_NAME,
    PARTITION_NAME_TAG,
    RESUME_RETRY_TAG,
    engine_event_data,
    from_failure_step_keys,
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
    "step_config",
    "step_config_class",
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


def step_config_class(node_definition: object) -> type[dg.Config] | None:
    """The ``dg.Config`` class an op's (or asset's) function takes as its ``config`` argument, if any.

    Dagster builds it only inside the step (``construct_config_from_context``), so a
    pydantic constraint of a run's config fails a step after the steps before it ran;
    ``config_errors`` builds it before the first step instead. The function and its
    config argument are reachable only through ``OpDefinition.compute_fn`` (a
    ``DecoratedOpFunction``), neither of them public.
    """
    import dagster as dg

    compute_fn = getattr(node_definition, "compute_fn", None)
    if compute_fn is None or not hasattr(compute_fn, "has_config_arg") or not compute_fn.has_config_arg():
        return None
    annotation = compute_fn.get_config_arg().annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, dg.Config) else None


def step_config(config_class: type[dg.Config], op_config: Mapping[str, object]) -> dg.Config:
    """The config object a step is handed for its (Dagster-processed) op config, built as Dagster builds
    it (``compute_generator.construct_config_from_context``: the fields equal to their default are left
    out, which the model config's family rule relies on); raises pydantic's ValidationError."""
    return config_class(**config_class._get_non_default_public_field_values_cls(dict(op_config)))  # noqa: SLF001


# How the error by which the instance's storage gives up at the outage limit begins (outages reads it back).
POSTGRES_GAVE_UP = "PostgreSQL at "


def retry_postgres_connections_within(limit_seconds: Callable[[], float]) -> bool:
    """Make dagster-postgres retry a failed connection for up to ``limit_seconds()`` (read at each failure),
    then fail naming PostgreSQL and its address, never its password; whether dagster-postgres is there.

    Every storage of a PostgreSQL instance connects through ``dagster_postgres.utils.create_pg_connection``,
    which retries through the module's ``retry_pg_connection_fn``: 5 times from 0.2 s, ~11.6 s in all
    (measured), not configurable, so a PostgreSQL restart or failover of tens of seconds fails steps and
    runs. No public setting serves. A refused password is not retried: it will not get better."""
    try:
        import dagster_postgres.utils as pg_utils
    except ImportError:
        return False
    if getattr(pg_utils.retry_pg_connection_fn, "_iris_within_limit", False):
        return True
    import importlib
    import time

    import sqlalchemy

    retried = (sqlalchemy.exc.DatabaseError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.TimeoutError)

    def retry_within_limit(fn, retry_limit: int = 5, retry_wait: float = 0.2):
        started, attempt = time.monotonic(), 0
        while True:
            try:
                return fn()
            except retried as error:
                attempt += 1
                limit = limit_seconds()
                waited = time.monotonic() - started
                if "password authentication failed" in str(error) or waited >= limit:
                    raise pg_utils.DagsterPostgresException(
                        f"{POSTGRES_GAVE_UP}{_postgres_address(fn)} did not answer for {waited:.0f} s (limit {limit:.0f} s, "
                        f"$IRIS_OUTAGE_LIMIT_SECONDS): {_first_line(error)}"
                    ) from error
                time.sleep(min(retry_wait * 2 ** (attempt - 1), 2.0, max(limit - waited, 0.05)))

    retry_within_limit._iris_within_limit = True  # type: ignore[attr-defined]
    pg_utils.retry_pg_connection_fn = retry_within_limit
    # The storages' constructors call the function through the name they imported (to read the
    # table names: a step or worker opening the instance during an outage), so it is replaced there too.
    for module in _POSTGRES_STORAGE_MODULES:
        importlib.import_module(module).retry_pg_connection_fn = retry_within_limit  # type: ignore[attr-defined]
    return True


# The dagster-postgres modules that import ``retry_pg_connection_fn`` by name.
_POSTGRES_STORAGE_MODULES = (
    "dagster_postgres.run_storage.run_storage",
    "dagster_postgres.event_log.event_log",
    "dagster_postgres.schedule_storage.schedule_storage",
)


def finish_storing_an_inserted_event(storage: Any, event: Any) -> bool:
    """Whether ``event`` already has its row in a dagster-postgres event log; if so, do here what
    ``store_event`` does after its INSERT, so that a call made again does not store the event twice.

    dagster-postgres's ``store_event`` commits its INSERT, then sends a NOTIFY and (for asset events)
    writes the asset index, each a statement of its own: a connection PostgreSQL drops after the INSERT
    fails the call with the event stored (a step's STEP_START was stored twice so, in CI). The event's
    row is found by its run and serialized form, the same value ``store_event`` inserts; what follows the
    INSERT are the storage's private index methods. No public API tells whether an event was stored."""
    import sqlalchemy
    from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable as events
    from dagster._serdes import serialize_value

    with storage.index_connection() as connection:
        row = connection.execute(
            sqlalchemy.select(events.c.id)
            .where(events.c.run_id == event.run_id, events.c.event == serialize_value(event))
            .order_by(events.c.id.desc())
            .limit(1)
        ).fetchone()
    if row is None:
        return False
    event_id = int(row[0])
    dagster_event = event.dagster_event if event.is_dagster_event else None
    if dagster_event is not None and dagster_event.event_type in ASSET_EVENTS and dagster_event.asset_key:
        with storage.index_transaction() as connection:
            storage._store_asset_event_tags(connection, [event], [event_id])
            storage._store_asset_event(connection, event, event_id)
    if dagster_event is not None and dagster_event.event_type in ASSET_CHECK_EVENTS:
        storage.store_asset_check_event(event, event_id)
    return True


def instance_config_defaults(base_dir: str) -> Mapping[str, object]:
    """The defaults of the settings a dagster.yaml leaves out, which Dagster asks a custom
    ``instance_class`` for (``InstanceRef.from_dir`` calls ``config_defaults``); Dagster's own are on
    the private ``InstanceRef``, and no public class serves."""
    from dagster._core.instance.ref import InstanceRef

    return InstanceRef.config_defaults(base_dir)


def ping_pooled_postgres_connections(instance: dg.DagsterInstance) -> int:
    """Check each pooled PostgreSQL connection of ``instance``'s storages before use (SQLAlchemy's
    ``checkout`` event; a dead one is replaced: ``DisconnectionError``); how many engines are pooled.

    ``optimize_for_webserver`` gives each storage a pool holding a connection open, which a PostgreSQL
    restart closes under it: the webserver's next request failed (measured). dagster-postgres builds
    that engine itself, with no setting for SQLAlchemy's ``pool_pre_ping``; its ``_engine`` is private.
    """
    import sqlalchemy

    pooled = 0
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        engine = getattr(getattr(storage, "_storage", storage), "_engine", None)
        if isinstance(engine, sqlalchemy.engine.Engine) and not isinstance(engine.pool, sqlalchemy.pool.NullPool):
            if not sqlalchemy.event.contains(engine, "checkout", _ping_before_use):
                sqlalchemy.event.listen(engine, "checkout", _ping_before_use)
            pooled += 1
    return pooled


def _ping_before_use(dbapi_connection: Any, _record: object, _proxy: object) -> None:
    import sqlalchemy

    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:
        raise sqlalchemy.exc.DisconnectionError(str(error)) from error


def _postgres_address(connect: Callable[[], object]) -> str:
    """``host:port/database`` of the engine whose ``connect`` failed (no user, no password)."""
    from iris_assets.tracking.redaction import database_address

    url = getattr(getattr(connect, "__self__", None), "url", None)
    return "(the instance's storage)" if url is None else database_address(url)


def _first_line(error: BaseException) -> str:
    from iris_assets.tracking.redaction import redacted

    return redacted(str(getattr(error, "orig", None) or error).strip().splitlines()[0])[:300]


def queue_asset_subset_run(
    plan_context: object,
    asset_keys: AbstractSet[dg.AssetKey],
    run_config: Callable[[dg.JobDefinition], Mapping[str, object]],
    tags: Mapping[str, str],
) -> str:
    """From inside a run worker: a new run of the same job over ``asset_keys`` (their checks included), with
    ``run_config(subset job)`` and ``tags``, submitted to the run queue; its id. Dagster's public APIs create
    runs from a sensor, a schedule or the UI, not from a running run; these calls (the plan context's
    reconstructable job, ``create_run_for_job``, ``submit_run`` without a workspace, which the queued
    coordinator does not need) do what a sensor's RunRequest would."""
    import dagster as dg

    run = plan_context.dagster_run  # type: ignore[attr-defined]
    instance = plan_context.instance  # type: ignore[attr-defined]
    keys = frozenset(asset_keys)
    subset = plan_context.reconstructable_job.get_subset(asset_selection=keys).get_definition()  # type: ignore[attr-defined]
    child = instance.create_run_for_job(
        job_def=subset,
        run_config=run_config(subset),
        tags=dict(tags),
        asset_selection=keys,
        remote_job_origin=run.remote_job_origin,
        job_code_origin=run.job_code_origin,
        status=dg.DagsterRunStatus.NOT_STARTED,
    )
    instance.submit_run(child.run_id, workspace=None)
    return child.run_id
