"""Names the binding writes: MLflow run tags and Dagster metadata keys, defined once."""

from iris_assets.tracking.private import BACKFILL_ID_TAG, PARTITION_NAME_TAG

DAGSTER_RUN_ID_TAG = "dagster_run_id"  # dagster-mlflow's tag: existing queries keep working
DAGSTER_RUN_IDS_TAG = "dagster_run_ids"  # every Dagster run that wrote to this MLflow run
JOB_NAME_TAG = "dagster_job_name"
DAGSTER_RUN_URL_TAG = "dagster_run_url"
PARENT_RUN_ID_TAG = "dagster_parent_run_id"
ROOT_RUN_ID_TAG = "dagster_root_run_id"
UPSTREAM_TAG_PREFIX = "upstream."
CHECK_TAG_PREFIX = "check."
# Dagster run tags copied onto the MLflow run: what started it (schedule, sensor,
# backfill, partition) and the project's own tags (landing file, digest...).
COPIED_DAGSTER_TAGS = (
    "dagster/schedule_name",
    "dagster/sensor_name",
    "dagster/tick",
    BACKFILL_ID_TAG,
    PARTITION_NAME_TAG,
    "iris/",
)

# Materialisation metadata pointing at the MLflow run.
RUN_ID_METADATA_KEY = "mlflow_run_id"
RUN_URL_METADATA_KEY = "mlflow_run_url"
