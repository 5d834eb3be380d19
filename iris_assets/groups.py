"""The asset group and the job of the pipeline, as the UI shows them (sweeps are jobs of ops: tuning/)."""

PIPELINE = "iris"  # raw_data ... registered_model: one materialisation = one MLflow run
PIPELINE_JOB = "iris_pipeline"  # the job of the whole pipeline; MLflow names the UI's "Materialize all" runs so too
