"""``settle_sweeps``: a sweep whose backfill is over, but whose ``best_trial`` did not run.

A failed trial stops the backfill before ``best_trial``: the sensor ends the sweep's
parent MLflow run FAILED, naming the failed trials. When every trial of the sweep
has since succeeded (failed ones re-executed from failure, continuing their child
runs), it requests a ``best_trial`` run, which summarises the sweep, registers the
best trial and settles the parent FINISHED.
"""

from __future__ import annotations

import dagster as dg

from iris_assets import dagster_private, settings
from iris_assets.tracking import MlflowRun
from iris_assets.tracking.store import mlflow_client
from iris_assets.tuning.assets import (
    BACKFILL_TAG,
    FAILED_TRIALS_TAG,
    SWEEP_PARENT_TAG,
    best_trial,
)

MAX_BEST_TRIAL_RUNS = 2  # the backfill's, or one requested here, and one more if that failed
_OVER = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")


@dg.sensor(
    asset_selection=[best_trial],
    minimum_interval_seconds=settings.current().orphan_sweep_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="End FAILED a sweep whose trials failed; run best_trial once they have all succeeded.",
)
def settle_sweeps(context: dg.SensorEvaluationContext, mlflow: MlflowRun) -> dg.SensorResult:
    config = mlflow.tracking_config()
    client = mlflow_client(config.tracking_uri)
    experiment = client.get_experiment_by_name(settings.current().tuning_experiment)
    if experiment is None:
        return dg.SensorResult(skip_reason=dg.SkipReason("no sweep yet"))
    parents = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{SWEEP_PARENT_TAG}` = 'true' AND attributes.status != 'FINISHED'",
        max_results=200,
    )
    requests, notes = [], []
    for parent in parents:
        backfill_id = parent.data.tags.get(BACKFILL_TAG)
        if not backfill_id:
            continue
        backfill = context.instance.get_backfill(backfill_id)
        if backfill is None or backfill.status.value not in _OVER:
            continue
        trials = _trial_outcomes(context.instance, backfill_id)
        failed = sorted(key for key, succeeded in trials.items() if not succeeded)
        if failed or not trials:
            if parent.info.status == "RUNNING":
                reason = f"{len(failed)} trial(s) failed: {', '.join(failed)}" if failed else "no trial ran"
                client.set_tag(parent.info.run_id, FAILED_TRIALS_TAG, " ".join(failed) or "none ran")
                client.set_terminated(parent.info.run_id, status="FAILED")
                notes.append(f"sweep {parent.info.run_id} FAILED: {reason}")
            continue
        attempts = _best_trial_runs(context.instance, backfill_id)
        if len(attempts) >= MAX_BEST_TRIAL_RUNS or any(r.status != dg.DagsterRunStatus.FAILURE for r in attempts):
            continue  # running, done, or failed for a reason a new run would meet again
        requests.append(
            dg.RunRequest(
                run_key=f"best-trial-{backfill_id}-{len(attempts)}",
                asset_selection=[best_trial.key],
                # In the backfill: listed with its runs in the UI, and reading the backfill's `sweep`.
                tags={dagster_private.BACKFILL_ID_TAG: backfill_id},
            )
        )
        notes.append(f"sweep {parent.info.run_id}: every trial succeeded; best_trial requested")
    if requests:
        return dg.SensorResult(run_requests=requests)
    return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(notes) or "no sweep to settle"))


def _trial_outcomes(instance: dg.DagsterInstance, backfill_id: str) -> dict[str, bool]:
    """Trial key -> whether it succeeded, in the backfill or in a re-execution of one of its runs."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={dagster_private.BACKFILL_ID_TAG: backfill_id}))
    roots = {run.run_id for run in runs}
    outcomes: dict[str, bool] = {}
    for run in runs:
        key = run.tags.get(dagster_private.PARTITION_NAME_TAG)
        if key is not None:
            outcomes[key] = outcomes.get(key, False) or run.status == dg.DagsterRunStatus.SUCCESS
    for key in [k for k, succeeded in outcomes.items() if not succeeded]:
        retried = instance.get_runs(
            filters=dg.RunsFilter(
                tags={dagster_private.PARTITION_NAME_TAG: key}, statuses=[dg.DagsterRunStatus.SUCCESS]
            )
        )
        outcomes[key] = any(run.root_run_id in roots or run.parent_run_id in roots for run in retried)
    return outcomes


def _best_trial_runs(instance: dg.DagsterInstance, backfill_id: str) -> list[dg.DagsterRun]:
    """The runs of best_trial for this sweep (in its backfill, or requested here since)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={dagster_private.BACKFILL_ID_TAG: backfill_id}))
    return [run for run in runs if run.asset_selection and best_trial.key in run.asset_selection]
