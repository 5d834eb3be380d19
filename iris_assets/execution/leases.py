"""Step leases: a step of a run that has ended never writes beside the step that retries it.

A step on a Celery worker runs holding its lease: a PostgreSQL advisory lock on its run and
step key, on a connection of its own, which PostgreSQL releases when the process holding it
ends, however it ends. Two rules use it:

* a delivery of a step whose lease a live worker holds is dropped (``execution.step_task``);
* a run that re-executes earlier runs (an automatic retry, a re-execution from failure)
  continues their MLflow run, so before its first step its run worker waits until no step
  of those runs still holds a lease: a step still running when its run failed is stopped by
  its worker (``execution.step_task``), and its lease is released as it dies. A retry never
  writes into the MLflow run while its predecessor's step still does.

Without ``DAGSTER_POSTGRES_URL`` (no PostgreSQL) there are no leases: steps then run in the
run worker's processes, which end with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import dagster as dg
import sqlalchemy

from iris_assets import settings

# Long enough for PostgreSQL to end a killed worker's session on a loaded machine; short
# enough that a duplicate delivery occupies a worker briefly.
LEASE_WAIT_SECONDS = 30


class PredecessorStillRunning(dg.DagsterError):
    """A step of a run this one re-executes still runs on a worker after the wait: this run writes nothing."""


@contextmanager
def step_lease(run_id: str, step_key: str, wait_seconds: float = LEASE_WAIT_SECONDS) -> Iterator[bool]:
    """Hold the lease of a run's step while the block runs, waiting up to ``wait_seconds`` for it;
    whether it was had (True without PostgreSQL)."""
    url = settings.current().dagster_postgres_sqlalchemy_url
    if url is None:
        yield True
        return
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            # Session-level: held until released or the connection ends (the worker died).
            key = _key(run_id, step_key)
            leased = _lock(connection, key, wait_seconds)
            try:
                yield leased
            finally:
                if leased:
                    with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):  # PostgreSQL restarted: released anyway
                        connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def wait_for_predecessors(
    instance: dg.DagsterInstance,
    dagster_run: dg.DagsterRun,
    step_keys: Sequence[str],
    log: Callable[[str], None],
    wait_seconds: float = LEASE_WAIT_SECONDS,
) -> None:
    """Before a re-execution's first step: wait until no step of the runs it re-executes holds its
    lease (each released at once when none does); past ``wait_seconds`` raise naming the step."""
    if settings.current().dagster_postgres_sqlalchemy_url is None or not dagster_run.parent_run_id:
        return
    deadline = time.monotonic() + wait_seconds
    for earlier in _earlier_runs(instance, dagster_run):
        for step_key in step_keys:
            with step_lease(earlier, step_key, wait_seconds=0.05) as free:
                if free:
                    continue
            log(f"Waiting up to {wait_seconds:.0f} s for step {step_key!r} of run {earlier} to stop on its worker.")
            with step_lease(earlier, step_key, wait_seconds=max(0.05, deadline - time.monotonic())) as free:
                if not free:
                    raise PredecessorStillRunning(
                        f"Step {step_key!r} of run {earlier} still runs on a worker after {wait_seconds:.0f} s; "
                        "this run continues the same MLflow run, so it starts no step. Re-execute it once that step ends."
                    )


def _earlier_runs(instance: dg.DagsterInstance, dagster_run: dg.DagsterRun) -> list[str]:
    """The runs ``dagster_run`` re-executes: its parent, its parent's parent... (newest first)."""
    found: list[str] = []
    parent_id = dagster_run.parent_run_id
    while parent_id and parent_id not in found:
        found.append(parent_id)
        parent = instance.get_run_by_id(parent_id)
        parent_id = parent.parent_run_id if parent is not None else None
    return found


def _key(run_id: str, step_key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{run_id}/{step_key}".encode()).digest()[:8], "big", signed=True)


def _lock(connection: sqlalchemy.Connection, key: int, wait_seconds: float) -> bool:
    """Take a session-level advisory lock, waiting at most ``wait_seconds``; whether it was taken."""
    from psycopg2 import errorcodes  # type: ignore[import-untyped]  # only where PostgreSQL is used

    connection.execute(
        sqlalchemy.text("SELECT set_config('lock_timeout', :timeout, false)"),
        {"timeout": f"{max(1, int(wait_seconds * 1000))}ms"},  # 0 would mean forever
    )
    try:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
    except sqlalchemy.exc.OperationalError as error:
        if getattr(error.orig, "pgcode", None) == errorcodes.LOCK_NOT_AVAILABLE:
            connection.rollback()
            return False
        raise
    return True
