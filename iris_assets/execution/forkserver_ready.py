"""The last module a multiprocess run's forkserver preloads: freeze what the others imported
(see ``execution.heap``; step processes are forked from it and exit without a final collection),
and make each step process forked from it end when its run worker ends.

A step process otherwise outlives a run worker that died (killed, out of memory), and went on
writing into the MLflow run that the run's re-execution continues. The forkserver is no help:
it lives while any step process does. So the forkserver holds a pidfd of its parent, the run
worker (Linux 5.3+), which each step process inherits and watches from a thread: readable means
the run worker has ended, and the step process ends at once (SIGKILL: nothing more is written).
Where pidfds are missing, nothing changes.
"""

import os
import select
import signal
import threading

from iris_assets.execution.heap import freeze_now


def _pidfd_of_the_run_worker():
    try:
        return os.pidfd_open(os.getppid())
    except (AttributeError, OSError):
        return None


_RUN_WORKER = _pidfd_of_the_run_worker()


def _end_with_the_run_worker() -> None:
    select.select([_RUN_WORKER], [], [])
    os.kill(os.getpid(), signal.SIGKILL)


def _watch_the_run_worker() -> None:
    threading.Thread(target=_end_with_the_run_worker, name="end with the run worker", daemon=True).start()


if _RUN_WORKER is not None:
    os.register_at_fork(after_in_child=_watch_the_run_worker)
freeze_now()
