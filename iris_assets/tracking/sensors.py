"""Daemon sensors that end MLflow runs no code inside the Dagster run could end.

``close_mlflow_run_on_failure`` / ``..._on_cancel`` end the MLflow run of a Dagster
run that failed or was canceled in a way that left it RUNNING (a run worker
killed, a cancel that stopped the process). A run-status sensor sees each run
once, so ``close_orphaned_mlflow_runs`` sweeps for what they could not end (the
tracking server was down at the time, or the daemon was not running).
"""

import dagster as dg

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


def orphan_sweep_sensor(minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """``close_orphaned_mlflow_runs``, looking every ``minimum_interval_seconds``."""

    @dg.sensor(
        name="close_orphaned_mlflow_runs",
        minimum_interval_seconds=minimum_interval_seconds,
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

    return close_orphaned_mlflow_runs
