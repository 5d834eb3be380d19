"""Daemon sensors that end runs no code inside the run could end.

``close_dead_runs`` marks failed (or canceled) the runs whose run worker on this
host is gone (``kill -9`` of ``dagster job execute``), and ends their MLflow runs.

``close_mlflow_run_on_failure`` / ``..._on_cancel`` end the MLflow run of a Dagster
run that failed or was canceled in a way that left it RUNNING (a run worker
killed, a cancel that stopped the process). A run-status sensor sees each run
once, so ``close_orphaned_mlflow_runs`` sweeps for what they could not end (the
tracking server was down at the time, or the daemon was not running).
"""

import dagster as dg

from iris_assets import settings
from iris_assets.runs.workers import close_dead_runs as close_dead_runs_of_this_host
from iris_assets.tracking.closing import end_orphaned_run, end_orphaned_runs
from iris_assets.tracking.resource import MlflowRun


def _closing_sensor(name: str, run_status: dg.DagsterRunStatus, ended: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        name=name,
        run_status=run_status,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"End the MLflow run of a {ended} Dagster run if it was left RUNNING.",
    )
    def _close(context: dg.RunStatusSensorContext, mlflow: MlflowRun) -> None:
        run = context.dagster_run
        for run_id in end_orphaned_run(context.instance, run, mlflow.tracking_config()):
            context.log.info(f"Ended MLflow run {run_id} (Dagster run {run.run_id} {run.status.value})")

    return _close


close_mlflow_run_on_failure = _closing_sensor("close_mlflow_run_on_failure", dg.DagsterRunStatus.FAILURE, "failed")
close_mlflow_run_on_cancel = _closing_sensor("close_mlflow_run_on_cancel", dg.DagsterRunStatus.CANCELED, "canceled")


@dg.sensor(
    minimum_interval_seconds=settings.current().orphan_sweep_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="End MLflow runs left RUNNING by finished Dagster runs (what the run-status "
    "sensors missed: the tracking server was down, the daemon was not running).",
)
def close_orphaned_mlflow_runs(context: dg.SensorEvaluationContext, mlflow: MlflowRun) -> dg.SkipReason:
    # A tracking server that is down fails this tick; the next tick tries again.
    ended = end_orphaned_runs(mlflow.tracking_config(), context.instance)
    for run_id, status in ended:
        context.log.info(f"Ended MLflow run {run_id} {status}")
    return dg.SkipReason(
        f"ended {len(ended)} MLflow run(s)" if ended else "no MLflow run left RUNNING by a finished Dagster run"
    )


@dg.sensor(
    minimum_interval_seconds=settings.current().orphan_sweep_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Mark failed the runs whose run worker on this host died (killed, crashed), ending their MLflow runs.",
)
def close_dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    closed = close_dead_runs_of_this_host(context.instance)
    for run in closed:
        context.log.info(
            f"Run {run.run_id}: worker {run.worker} is gone; marked {run.status}; MLflow {run.mlflow_runs}"
        )
    return dg.SkipReason(f"closed {len(closed)} run(s)" if closed else "no run with a dead worker on this host")
