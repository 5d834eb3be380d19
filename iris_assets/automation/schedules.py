"""The retraining schedule.

It is defined STOPPED: nothing retrains until someone turns it on, in the UI
(Automation → iris_retraining → toggle) or with
``dagster schedule start iris_retraining -m iris_assets`` (needs the daemon:
``dagster dev`` runs one). Cron and timezone come from ``IRIS_RETRAIN_CRON``
(default ``0 3 * * *``, 03:00 daily) and ``IRIS_RETRAIN_TIMEZONE`` (default UTC),
read when the code location loads.
"""

import dagster as dg

from iris_assets import settings
from iris_assets.automation.jobs import iris_pipeline

SCHEDULE_NAME = "iris_retraining"
SCHEDULED_TIME_TAG = "iris/scheduled_time"


@dg.schedule(
    name=SCHEDULE_NAME,
    job=iris_pipeline,
    cron_schedule=settings.current().retrain_cron,
    execution_timezone=settings.current().retrain_timezone,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Retrain the whole Iris pipeline on a cron (stopped by default).",
)
def iris_retraining(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    tick = context.scheduled_execution_time.isoformat()
    # run_key: a tick evaluated twice (a daemon restart) starts one run, not two.
    return dg.RunRequest(run_key=tick, tags={SCHEDULED_TIME_TAG: tick})
