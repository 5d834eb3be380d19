"""Print the latest MLflow run of the pipeline's experiment and how to open both UIs.

    python -m iris_assets.last_run
"""

import os
import sys

from iris_assets.local_state import embedded_tracking_uri, state_dir
from iris_assets.mlflow_run import MlflowRun


def main() -> int:
    from mlflow import MlflowClient

    resource = MlflowRun()
    tracking_uri = resource.resolved_tracking_uri()
    experiment_name = resource.resolved_experiment_name()
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    runs = (
        client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
        if experiment
        else []
    )
    if not runs:
        print(f"No MLflow run in experiment {experiment_name!r} at {tracking_uri}", file=sys.stderr)
        return 1
    run = runs[0]
    ui = resource.resolved_ui_url(tracking_uri)
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(run.data.metrics.items()))
    print(f"MLflow run {run.info.run_id}: {run.info.status} ({metrics})")
    print(f"  experiment {experiment_name!r} in {tracking_uri}")
    print(f"  {ui}/#/experiments/{experiment.experiment_id}/runs/{run.info.run_id}")
    if tracking_uri == embedded_tracking_uri():
        print("Open the MLflow UI:  .venv/bin/mlflow ui --host 127.0.0.1 --port 5000 "
              f"--backend-store-uri {tracking_uri}")
    dagster_home = os.environ.get("DAGSTER_HOME", str(state_dir() / "dagster_home"))
    print(f"Open the Dagster UI: DAGSTER_HOME={dagster_home} .venv/bin/dagster dev -w workspace.yaml "
          "(then http://127.0.0.1:3000)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
