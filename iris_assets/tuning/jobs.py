"""The two jobs of a sweep: ``<dataset>_sweep`` (one run per sweep: its parent MLflow run) and
``<dataset>_trial`` (one run per trial, a partition of ``<dataset>_trials``: a child MLflow run).
Iris's are ``iris_sweep`` and ``iris_trial``."""

import dagster as dg

from iris_assets.tuning.ops import sweep_ops
from iris_assets.tuning.target import IRIS_TARGET, SweepTarget


def sweep_jobs(target: SweepTarget) -> tuple[dg.JobDefinition, dg.JobDefinition]:
    """``target``'s sweep job and trial job."""
    ops = sweep_ops(target)

    @dg.job(
        name=target.sweep_job,
        description=f"A hyperparameter sweep of {target.pipeline_job}: give it a sweep (as a sweep file says it) "
        f"under ops.open_sweep.config; its trials run as runs of {target.trial_job}; the best one is registered.",
    )
    def sweep():
        opened = ops.open_sweep()
        ops.best_trial(opened, ops.wait_for_trials(opened))

    @dg.job(
        name=target.trial_job,
        partitions_def=ops.trials,
        description=f"One trial of a sweep (started by the sensor {target.trial_launcher}): the partition key is "
        "its hyperparameters.",
    )
    def trial():
        ops.trial()

    return sweep, trial


iris_sweep, iris_trial = sweep_jobs(IRIS_TARGET)
SWEEP_JOB, TRIAL_JOB = iris_sweep.name, iris_trial.name
