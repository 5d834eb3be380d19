"""The two jobs of a sweep: ``iris_sweep`` (one run per sweep: its parent MLflow run) and
``iris_trial`` (one run per trial, a partition of ``iris_trials``: a child MLflow run)."""

import dagster as dg

from iris_assets.tuning.ops import TRIALS, best_trial, open_sweep, trial, wait_for_trials

SWEEP_JOB = "iris_sweep"
TRIAL_JOB = "iris_trial"


@dg.job(
    name=SWEEP_JOB,
    description="A hyperparameter sweep: give it a sweep (as a sweep file says it) under "
    "ops.open_sweep.config; its trials run as runs of iris_trial; the best one is registered.",
)
def iris_sweep():
    sweep = open_sweep()
    best_trial(sweep, wait_for_trials(sweep))


@dg.job(
    name=TRIAL_JOB,
    partitions_def=TRIALS,
    description="One trial of a sweep (started by the sensor launch_sweep_trials): the partition key is its "
    "hyperparameters.",
)
def iris_trial():
    trial()
