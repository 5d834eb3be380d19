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
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from iris_assets import settings

RESULT_BACKEND = "rpc://"  # results return over the broker (RabbitMQ): nothing else to run
# What both sides of the queue must agree on (Celery's lowercase settings).
CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,  # acknowledged when the step ends, not when it starts...
    "task_reject_on_worker_lost": True,  # ...so a worker that dies gives its step back to the queue
    "worker_prefetch_multiplier": 1,  # a worker holds one step at a time
}
# The module Celery's app (dagster_celery.app) imports its settings from, when present.
_CONFIG_MODULE = "dagster_celery_config"
_CONFIG_SOURCE = '''"""Settings of this Celery worker, from iris_assets (no secret is written here)."""
from iris_assets.execution.celery import worker_settings

globals().update(worker_settings())
'''


def executor_config(config: dict[str, Any]) -> dict[str, Any]:
    """The celery executor's config of a run, completed: broker from the environment, shared settings.

    The broker URL holds the broker's password: it is read where the run executes,
    never written into run config (which Dagster stores and shows).
    """
    return {
        **config,
        "broker": config.get("broker") or settings.current().celery_broker_url,
        "backend": config.get("backend") or RESULT_BACKEND,
        "config_source": {**CELERY_SETTINGS, **(config.get("config_source") or {})},
    }


def worker_settings() -> dict[str, Any]:
    return {"broker_url": settings.current().celery_broker_url, "result_backend": RESULT_BACKEND, **CELERY_SETTINGS}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="iris-worker", description="Start a Celery worker for Dagster steps.")
    parser.add_argument("--name", default="iris", help="worker name (%(default)s@<host>)")
    parser.add_argument("--concurrency", type=int, default=1, help="steps at once (default: %(default)s)")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    settings.current()  # a bad environment value fails here, with its name, not in a step
    config_dir = Path(tempfile.mkdtemp(prefix="iris-worker-"))
    (config_dir / f"{_CONFIG_MODULE}.py").write_text(_CONFIG_SOURCE)
    existing = settings.snapshot(("PYTHONPATH",))["PYTHONPATH"]
    settings.export({"PYTHONPATH": os.pathsep.join(p for p in (str(config_dir), existing) if p)})
    command = [
        sys.executable,  # `python -m celery`: no need for the venv's bin on PATH
        "-m",
        "celery",
        "-A",
        "dagster_celery.app",
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
