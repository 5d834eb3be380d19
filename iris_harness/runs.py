"""The pipeline's job as a reconstructable target, and Dagster runs started or watched from outside."""

import json
import subprocess
from pathlib import Path
from typing import Optional

import dagster as dg

from iris_assets.automation.jobs import iris_pipeline_job
from iris_harness.environment import BIN
from iris_harness.processes import wait_until

# The job, for ``dg.reconstructable(iris_pipeline)``: executors that start processes import it again.
iris_pipeline = iris_pipeline_job


def start_job_execute(run_config: dict, folder: Path, name: str, cwd: Optional[Path] = None) -> subprocess.Popen:
    """``dagster job execute`` of the pipeline with ``run_config``, in its own process group.

    Its output goes to ``folder/<name>.log``; the caller kills or waits for it.
    """
    config = folder / f"{name}.json"
    config.write_text(json.dumps(run_config))
    return subprocess.Popen(
        [str(BIN / "dagster"), "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline", "-c", str(config)],
        stdout=open(folder / f"{name}.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=cwd,
    )


def wait_for_step_start(
    instance: dg.DagsterInstance, step_key: str, run_id: Optional[str] = None, timeout: float = 240
) -> dg.EventLogEntry:
    """The STEP_START event of ``step_key`` in ``run_id`` (or in any run of the instance), once it exists."""

    def started() -> Optional[dg.EventLogEntry]:
        run_ids = [run_id] if run_id else [run.run_id for run in instance.get_runs()]
        for candidate in run_ids:
            for entry in instance.all_logs(candidate, of_type=dg.DagsterEventType.STEP_START):
                if entry.step_key == step_key:
                    return entry
        return None

    return wait_until(started, timeout=timeout, what=f"step {step_key} to start", interval=0.1)


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int:
    """The pid of a run's run worker, from the engine event its launcher logs."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        if (entry.message or "").startswith("Started process for run (pid:"):
            return int(entry.dagster_event.event_specific_data.metadata["pid"].value)
    raise AssertionError(f"no run worker pid in the event log of {run_id}")
