"""The Celery app of `iris-worker`: dagster-celery's step task, which first drops a step no run wants.

A step's message is acknowledged when the step ends (``task_acks_late``), so the
broker hands it out again when it cannot tell that it ended: the worker died (the
step must run again), or the broker restarted while the step ran or before its
acknowledgement arrived (it must not). A worker executes a step holding a lease: a
PostgreSQL advisory lock on the run and step, on a connection of its own, which
PostgreSQL releases when that worker dies. Before executing, a delivery takes the
lease and reads the run's event log:

* the lease stays held for ``LEASE_WAIT_SECONDS`` -> a live worker is executing this
  step -> dropped (the wait: PostgreSQL frees a killed worker's lease a moment after
  RabbitMQ has already handed its step to another worker);
* the run is no longer running (failed, canceled, succeeded) -> dropped;
* the step already ended in this run -> dropped;
* otherwise (first delivery, or its last worker died) -> executed.

The lease asks nothing of the broker: right after a broker restart, the worker that
holds a step may still be reconnecting, and a question sent over the broker (Celery's
``inspect``) goes unanswered. Without ``DAGSTER_POSTGRES_URL`` (no PostgreSQL), there
is no lease and a redelivered step runs again (steps are idempotent).

A dropped step writes nothing (no MLflow call, no stored value, no result: the
worker that ran it stores that) and leaves one line in the worker's log.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import celery
import dagster as dg
import sqlalchemy
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task
from psycopg2 import errorcodes  # type: ignore[import-untyped]

from iris_assets import dagster_private, settings
from iris_assets.execution.celery import worker_settings

logger = get_task_logger(__name__)
# Long enough for PostgreSQL to end a killed worker's session on a loaded machine; short
# enough that a duplicate delivery occupies a worker briefly.
LEASE_WAIT_SECONDS = 30
_ENDED = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED)


class StepTask(celery.Task):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        step = dagster_private.celery_step(kwargs["execute_step_args_packed"])
        with step_lease(step.run_id, step.step_key) as leased:
            reason = "a live worker is executing it" if not leased else None
            if reason is None:
                with dg.DagsterInstance.from_ref(step.instance_ref) as instance:
                    reason = why_drop(instance, step.run_id, step.step_key)
            if reason is not None:
                logger.warning(f"Dropped step {step.step_key!r} of run {step.run_id}: {reason}.")
                raise Ignore()  # acknowledged, no result stored
            return super().__call__(*args, **kwargs)


@contextmanager
def step_lease(run_id: str, step_key: str, wait_seconds: float = LEASE_WAIT_SECONDS) -> Iterator[bool]:
    """Hold the lease of a run's step while the block runs, waiting up to ``wait_seconds`` for it;
    whether it was had (True without PostgreSQL)."""
    url = settings.current().dagster_postgres_sqlalchemy_url
    if url is None:
        yield True
        return
    key = int.from_bytes(hashlib.sha256(f"{run_id}/{step_key}".encode()).digest()[:8], "big", signed=True)
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            # Session-level: held until released or the connection ends (the worker died).
            leased = _lock(connection, key, wait_seconds)
            try:
                yield leased
            finally:
                if leased:
                    with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):  # PostgreSQL restarted: released anyway
                        connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


def _lock(connection: sqlalchemy.Connection, key: int, wait_seconds: float) -> bool:
    """Take a session-level advisory lock, waiting at most ``wait_seconds``; whether it was taken."""
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


def why_drop(instance: dg.DagsterInstance, run_id: str, step_key: str) -> Optional[str]:
    """Why this delivery of a step must not run (its run or the step has ended), or None."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return "the run does not exist"
    if run.status != dg.DagsterRunStatus.STARTED:
        return f"the run is {run.status.value}"
    for entry in instance.all_logs(run_id, of_type=set(_ENDED)):
        event = entry.dagster_event
        if event is not None and event.step_key == step_key:
            return f"the step already ended ({event.event_type.value})"
    return None


app = make_app()
app.conf.update(worker_settings())
execute_plan = create_task(app, base=StepTask)
