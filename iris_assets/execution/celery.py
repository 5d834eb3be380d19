"""Celery: the broker settings orchestrator and workers share, and the `iris-worker` command.

    iris-worker [--name NAME] [--concurrency N]

starts a Celery worker that runs Dagster steps for any run of this project whose
executor is ``celery`` (run config ``execution: {config: {celery: {}}}``). Start one
per core on as many machines as you like; each needs this package, the instance's
storage (``DAGSTER_POSTGRES_URL``), the broker (``IRIS_CELERY_BROKER_URL``), the
asset storage (``IRIS_ASSET_STORAGE`` with its ``AWS_*``) and the tracking server.

Worker loss: with RabbitMQ, a task is acknowledged only when it ends
(``task_acks_late``) and given back when its worker dies (``task_reject_on_worker_lost``):
RabbitMQ requeues it as soon as the worker's connection drops, and another worker
runs the step again (steps are idempotent: the binding replaces a model logged
twice, registration reuses a version). RabbitMQ's ``consumer_timeout`` must exceed
the longest step, or the broker takes the task back from a live worker. Redis, by
contrast, redelivers by a visibility timeout, which also hands a long step to a
second worker while the first still runs it; hence RabbitMQ.

PostgreSQL restarts: the result backend's reads and writes are retried for up to
``$IRIS_OUTAGE_LIMIT_SECONDS`` (``outages.result_backend_retries``), as are the
instance's storage connections (``iris_assets.instance``).

Broker restarts: step results are stored in the instance's PostgreSQL (Celery's
database result backend), not sent over the broker, so a run worker waiting for a
step loses nothing when the broker restarts; it publishes the next steps with
retries for up to ``$IRIS_OUTAGE_LIMIT_SECONDS`` (``execution.outages``), and workers
reconnect by themselves. A step's message that the broker hands out again after a
restart is dropped by the worker when its run or step has ended or a live worker
holds it (``execution.step_task``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, Optional

from iris_assets import settings
from iris_assets.execution import outages

# What both sides of the queue must agree on (Celery's lowercase settings).
CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,  # acknowledged when the step ends, not when it starts...
    "task_reject_on_worker_lost": True,  # ...so a worker that dies gives its step back to the queue
    "worker_prefetch_multiplier": 1,  # a worker holds one step at a time
    # A step goes on through a broker restart (its result is in the database, its
    # redelivered message dropped): Celery's default, said explicitly.
    "worker_cancel_long_running_tasks_on_connection_loss": False,
    "broker_connection_retry_on_startup": True,
    # Celery's result tables keep their default names (celery_taskmeta, celery_tasksetmeta):
    # its `database_table_names` renames a class-global table, which the next backend
    # built in the same process silently renames back.
    "database_engine_options": {"pool_pre_ping": True},  # a connection PostgreSQL dropped is replaced
}


def shared_settings() -> dict[str, Any]:
    """``CELERY_SETTINGS`` and what follows from this environment: the publishing retry budget."""
    return {
        **CELERY_SETTINGS,
        "task_publish_retry": True,
        "task_publish_retry_policy": outages.publish_retry_policy(outages.limit_seconds()),
        **outages.result_backend_retries(outages.limit_seconds()),
    }


def executor_config(config: dict[str, Any]) -> dict[str, Any]:
    """The celery executor's config of a run, completed: broker from the environment, shared settings.

    The broker URL holds the broker's password: it is read where the run executes,
    never written into run config (which Dagster stores and shows).
    """
    return {
        **config,
        "broker": config.get("broker") or settings.current().celery_broker_url,
        "backend": config.get("backend") or settings.current().resolved_celery_result_backend,
        "config_source": {**shared_settings(), **(config.get("config_source") or {})},
    }


def worker_settings() -> dict[str, Any]:
    current = settings.current()
    return {
        "broker_url": current.celery_broker_url,
        "result_backend": current.resolved_celery_result_backend,
        **shared_settings(),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="iris-worker", description="Start a Celery worker for Dagster steps.")
    parser.add_argument("--name", default="iris", help="worker name (%(default)s@<host>)")
    parser.add_argument("--concurrency", type=int, default=1, help="steps at once (default: %(default)s)")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    settings.current()  # a bad environment value fails here, with its name, not in a step
    command = [
        sys.executable,  # `python -m celery`: no need for the venv's bin on PATH
        "-m",
        "celery",
        "-A",
        "iris_assets.execution.step_task",
        "worker",
        "-Q",
        "dagster",
        "-n",
        f"{args.name}@%h",
        "--concurrency",
        str(args.concurrency),
        "--loglevel",
        args.loglevel,
        "--without-gossip",
        "--without-mingle",
    ]
    os.execv(sys.executable, command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
