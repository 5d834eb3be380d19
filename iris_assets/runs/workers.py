"""Run workers that died: who ran a run, whether it is still alive, and closing its runs if not.

A run worker killed outright (``kill -9`` of ``dagster job execute``, of the
multiprocess executor's parent, an out-of-memory kill) leaves its Dagster run
STARTED and its MLflow run RUNNING: no code of the run is left to end them, and
Dagster refuses to re-execute a run that is not failed. The executor wrapper
(``execution.settling``) records who runs each run, in the run tag ``iris/run_worker``
(``host:pid:start time``). ``close_dead_runs`` finds runs whose worker on this host
is gone (the pid is free, or now another process), marks them failed (canceled if
they were canceling) with a message saying so, and ends their MLflow runs.

Runs on another host are left to that host (a daemon there, or ``iris-runs close``);
runs launched by a code server are reported by that server when their worker dies,
and found here, by the sensor the restarted server evaluates, when the server died too.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Optional

import dagster as dg

RUN_WORKER_TAG = "iris/run_worker"


def this_worker() -> str:
    """``host:pid:start time`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid()) or ''}"


def record_worker(instance: dg.DagsterInstance, run_id: str) -> None:
    instance.add_run_tags(run_id, {RUN_WORKER_TAG: this_worker()})


def _started(pid: int) -> Optional[str]:
    """The process's start time since boot (Linux /proc), which tells a reused pid apart; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == "Z":  # a zombie: killed, not yet reaped by its parent
        return "zombie"
    return fields[19]  # field 22 of stat(5): starttime


def worker_alive(tag: str) -> Optional[bool]:
    """Whether the worker a tag names still runs; None when it is not on this host (or the tag is unreadable)."""
    host, _, rest = tag.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    now = _started(pid)
    if now == "zombie":
        return False
    return not (started and now is not None and now != started)


@dataclass(frozen=True)
class ClosedRun:
    run_id: str
    status: str  # the Dagster status written
    worker: str
    mlflow_runs: list[str]


def dead_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs in progress whose recorded worker on this host is gone."""
    in_progress = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING])
    )
    return [
        run for run in in_progress if RUN_WORKER_TAG in run.tags and worker_alive(run.tags[RUN_WORKER_TAG]) is False
    ]


def close_dead_runs(instance: dg.DagsterInstance) -> list[ClosedRun]:
    """Mark each dead run failed (or canceled) and end its MLflow runs; what was closed."""
    from iris_assets.project_mlflow import tracking_config
    from iris_assets.tracking.closing import end_orphaned_run

    closed = []
    for run in dead_runs(instance):
        worker = run.tags[RUN_WORKER_TAG]
        message = (
            f"The run worker ({worker}: host, pid, start time) is gone: killed or crashed, it ended nothing. "
            "Marked by iris_assets' dead-run check; re-execute it from failure to continue its MLflow run."
        )
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, message)
        else:
            instance.report_run_failed(run, message)
        finished = instance.get_run_by_id(run.run_id)
        assert finished is not None
        ended = end_orphaned_run(instance, finished, tracking_config())
        closed.append(ClosedRun(run.run_id, finished.status.value, worker, ended))
    return closed
