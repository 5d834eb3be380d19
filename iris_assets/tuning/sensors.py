"""``launch_sweep_trials``: a sweep run that has opened its sweep gets one ``iris_trial`` run per trial
(a dataset's: ``launch_<dataset>_sweep_trials``, ``<dataset>_trial``).

A run cannot launch runs; a sensor can. Every tick (the sensor daemon's loop, ~5 s) it
looks at the sweeps in progress: once a sweep run's ``open_sweep`` has succeeded (its
trials declared, its parent MLflow run open), each of its trials is requested once,
keyed by the sweep's first run and the trial (a re-execution of the sweep requests
nothing again: failed trials are re-executed from failure, continuing their child runs).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from iris_assets.tuning.ops import SWEEP_TAG, SweepSpec
from iris_assets.tuning.target import IRIS_TARGET, SweepTarget


def trial_launcher(target: SweepTarget) -> dg.SensorDefinition:
    """The sensor starting the trials of ``target``'s sweeps (Iris's: ``launch_sweep_trials``)."""

    @dg.sensor(
        name=target.trial_launcher,
        job_name=target.trial_job,
        minimum_interval_seconds=1,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Start the trials of each sweep whose run has opened it (one {target.trial_job} run per trial).",
    )
    def launch_trials(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        requests, notes = [], []
        sweeps = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=target.sweep_job, statuses=[dg.DagsterRunStatus.STARTED]), limit=50
        )
        for run in sweeps:
            if not _opened(context.instance, run, target.open_sweep):
                continue
            sweep_id = run.root_run_id or run.run_id  # what its trials are tagged with, whatever re-executes it
            ops: Any = run.run_config["ops"]
            spec = SweepSpec(**ops[target.open_sweep]["config"])
            executor: dict[str, Any] = {"execution": {"config": {spec.executor: {}}}} if spec.executor else {}
            keys = spec.sweep().keys
            requests += [
                dg.RunRequest(
                    run_key=f"{sweep_id}:{key}", partition_key=key, tags={SWEEP_TAG: sweep_id}, run_config=executor
                )
                for key in keys
            ]
            notes.append(f"sweep {sweep_id}: {len(keys)} trial(s)")
        if requests:
            return dg.SensorResult(run_requests=requests)
        return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(notes) or "no sweep to start"))

    return launch_trials


launch_sweep_trials = trial_launcher(IRIS_TARGET)


def _opened(instance: dg.DagsterInstance, run: dg.DagsterRun, open_sweep: str) -> bool:
    """Whether ``open_sweep`` succeeded in this run or in a run it re-executes."""
    current: dg.DagsterRun | None = run
    while current is not None:
        done = instance.all_logs(current.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        if any(event.step_key == open_sweep for event in done):
            return True
        current = instance.get_run_by_id(current.parent_run_id) if current.parent_run_id else None
    return False
