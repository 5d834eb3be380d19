"""Run workers forked from a preloaded forkserver, in the code server that starts them.

In a deployment every run (the UI's "Materialize", the daemon's queue, schedules,
sensors, sweeps' backfills) is started by the code server, which Dagster has start
each run worker with multiprocessing's "spawn": a new interpreter that imports
Dagster, these definitions and every library the steps use, again for each run
(~5 of the ~9 CPU-seconds of a whole run here, measured with ``-X importtime``).
Here the code server forks its run workers instead from a forkserver that imported
all that once (``STEP_PRELOAD``, as the multiprocess executor's step processes are
forked), so a run worker pays only for its run. The run worker is otherwise the
same: Dagster's own function, arguments, queue and termination event.
``IRIS_RUN_WORKER_START=spawn`` keeps Dagster's way (the benchmark compares both).
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

from iris_assets import dagster_private, settings
from iris_assets.execution.executor import STEP_PRELOAD


def _preloaded_forkserver() -> BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(STEP_PRELOAD)
    return context


def fork_run_workers() -> bool:
    """In a code server process, start run workers from the preloaded forkserver (its first
    run starts the forkserver); elsewhere, or with ``IRIS_RUN_WORKER_START=spawn``, nothing.
    Returns whether run workers will be forked."""
    if settings.current().run_worker_start == "spawn":
        return False
    return dagster_private.start_run_workers_with(_preloaded_forkserver)
