"""The project's housekeeping sensors.

``close_dead_runs`` marks failed (or canceled) the runs whose run worker on this
host is gone (``kill -9`` of ``dagster job execute``), and ends their MLflow runs;
``close_orphaned_mlflow_runs`` (the MLflow binding's sweep, ``tracking.sensors``) ends the
MLflow runs the run-status sensors could not, both every ``$IRIS_ORPHAN_SWEEP_SECONDS``.
"""

import dagster as dg

from iris_assets import settings
from iris_assets.runs.workers import close_dead_runs as close_dead_runs_of_this_host
from iris_assets.tracking.sensors import orphan_sweep_sensor

close_orphaned_mlflow_runs = orphan_sweep_sensor(settings.current().orphan_sweep_seconds)


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
