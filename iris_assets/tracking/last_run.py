"""Print the latest MLflow run of the pipeline's experiment and how to open both UIs.

python -m iris_assets.tracking.last_run
"""

import sys

from iris_assets import settings
from iris_assets.tracking import config as tracking_config
from iris_assets.tracking.redaction import without_credentials
from iris_assets.tracking.store import mlflow_client


def main() -> int:
    config = tracking_config.resolve()
    shown_uri = without_credentials(config.tracking_uri)
    client = mlflow_client(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.experiment_name)
    runs = (
        client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
        if experiment
        else []
    )
    if not experiment or not runs:
        print(f"No MLflow run in experiment {config.experiment_name!r} at {shown_uri}", file=sys.stderr)
        return 1
    run = runs[0]
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(run.data.metrics.items()))
    print(f"MLflow run {run.info.run_id}: {run.info.status} ({metrics})")
    print(f"  experiment {config.experiment_name!r} in {shown_uri}")
    print(f"  {config.run_url(experiment.experiment_id, run.info.run_id)}")
    env = settings.current()
    if config.tracking_uri == env.embedded_tracking_uri:
        print(
            "Open the MLflow UI:  .venv/bin/mlflow ui --host 127.0.0.1 --port 5000 "
            f"--backend-store-uri {config.tracking_uri}"
        )
    print(
        f"Open the Dagster UI: DAGSTER_HOME={env.resolved_dagster_home} .venv/bin/dagster dev -w workspace.yaml "
        "(then http://127.0.0.1:3000)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
