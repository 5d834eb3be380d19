"""The Celery app of `iris-worker`: dagster-celery's step task, which first drops a step no run wants.

A step's message is acknowledged when the step ends (``task_acks_late``), so the
broker hands it out again when it cannot tell that it ended: the worker died (the
step must run again), or the broker restarted while the step ran or before its
acknowledgement arrived (it must not). A worker executes a step holding its lease
(``execution.leases``: a row whose heartbeat its holder moves, through PostgreSQL
restarts too). Before executing, a delivery takes the lease and reads the run's event log:

* a live worker holds the lease (its heartbeat moves) -> dropped;
* the run is no longer running (failed, canceled, succeeded) -> dropped;
* the step already ended in this run -> dropped;
* otherwise (first delivery, or its last worker died: its heartbeat stood still for
  ``STALE_SECONDS``, and the lease is taken over) -> executed.

The lease asks nothing of the broker: right after a broker restart, the worker that
holds a step may still be reconnecting, and a question sent over the broker (Celery's
``inspect``) goes unanswered. Without ``DAGSTER_POSTGRES_URL`` (no PostgreSQL), there
is no lease and a redelivered step runs again (steps are idempotent).

A dropped step writes nothing (no MLflow call, no stored value, no result: the
worker that ran it stores that) and leaves one line in the worker's log.

While a step runs, its worker asks every ``WATCH_SECONDS`` whether the run has failed or
been canceled (its run worker died, or an outage past the limit failed it); then the step
gives its lease up and is stopped, with a line in the worker's log, before the run's retry
writes into the same MLflow run (the retry waits for the step's lease). A step whose lease
was taken over (``execution.leases``) is stopped the same way.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any, Optional

import celery
import dagster as dg
from celery.exceptions import Ignore
from celery.utils.log import get_task_logger
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from iris_assets import dagster_private
from iris_assets.execution.celery import worker_settings
from iris_assets.execution.leases import Lease, step_lease

logger = get_task_logger(__name__)
# How often a running step asks whether its run has ended (then it stops: see StopWhenRunEnds).
WATCH_SECONDS = 2.0
_RUN_OVER = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
_ENDED = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED)


class StepTask(celery.Task):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        step = dagster_private.celery_step(kwargs["execute_step_args_packed"])

        def lost(holder: str) -> None:
            stop_this_step(step.run_id, step.step_key, f"its lease passed to {holder} (no heartbeat from here)")

        with step_lease(step.run_id, step.step_key, on_lost=lost) as (lease, held_by):
            reason = f"a live worker is executing it ({held_by})" if held_by else None
            if reason is None:
                with dg.DagsterInstance.from_ref(step.instance_ref) as instance:
                    reason = why_drop(instance, step.run_id, step.step_key)
            if reason is not None:
                logger.warning(f"Dropped step {step.step_key!r} of run {step.run_id}: {reason}.")
                raise Ignore()  # acknowledged, no result stored
            watch = StopWhenRunEnds(step.instance_ref, step.run_id, step.step_key, lease)
            watch.start()
            try:
                return super().__call__(*args, **kwargs)
            finally:
                watch.done.set()


class StopWhenRunEnds(threading.Thread):
    """Stops the step it watches once its run has failed or was canceled: a run worker that died, or a
    run failed while this step ran, would otherwise leave the step writing into the MLflow run that the
    run's retry or re-execution continues. It gives the step's lease up (the retry waits for that:
    ``execution.leases``) and kills this pool process; the message comes back to the queue and is dropped."""

    def __init__(self, instance_ref: Any, run_id: str, step_key: str, lease: Lease):
        super().__init__(name=f"watch {run_id}/{step_key}", daemon=True)
        self.instance_ref, self.run_id, self.step_key, self.lease = instance_ref, run_id, step_key, lease
        self.done = threading.Event()

    def run(self) -> None:
        with dg.DagsterInstance.from_ref(self.instance_ref) as instance:
            while not self.done.wait(WATCH_SECONDS):
                try:
                    run = instance.get_run_by_id(self.run_id)
                except Exception:  # the storage is away: the step goes on, asked again later
                    continue
                if run is not None and run.status in _RUN_OVER and not self.done.is_set():
                    self.lease.give_up()  # the step writes nothing from here: this process ends next
                    stop_this_step(
                        self.run_id,
                        self.step_key,
                        f"the run is {run.status.value} (its retry or re-execution continues its MLflow run)",
                    )


def stop_this_step(run_id: str, step_key: str, why: str) -> None:
    """End this pool process, which runs the step, with a line in the worker's log saying why."""
    logger.warning(f"Stopped step {step_key!r} of run {run_id}: {why}.")
    logging.shutdown()  # the line is out before the process ends
    os.kill(os.getpid(), signal.SIGKILL)


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
