"""The asset groups and the pipeline's job, as the UI shows them: the pipeline, and the sweeps that tune it."""

PIPELINE = "iris"  # raw_data ... registered_model: one materialisation = one MLflow run
TUNING = "tuning"  # sweep, trial_model, trial_metrics, best_trial: one backfill = one sweep
PIPELINE_JOB = "iris_pipeline"  # the job of the whole pipeline; MLflow names the UI's "Materialize all" runs so too
