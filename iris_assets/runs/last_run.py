"""Where to look after a run: the latest MLflow run of the pipeline's experiment, and what to try next.

python -m iris_assets.runs.last_run      (the last step of scripts/run-pipeline.sh)
"""

import sys

from iris_assets import settings
from iris_assets.project_mlflow import tracking_config
from iris_assets.tracking.redaction import without_credentials
from iris_assets.tracking.store import mlflow_client

NEXT_STEPS = """Next:
  .venv/bin/iris-ui             # the Dagster UI (http://127.0.0.1:3000) and the MLflow UI (http://127.0.0.1:5000)
  echo '[[5.1, 3.5, 1.4, 0.2]]' | .venv/bin/iris-predict --model models:/{model}@champion -
  .venv/bin/iris-sweep launch examples/sweep.yaml     # a hyperparameter sweep (with iris-ui running)
  README.md: the first-hour tour"""


def main() -> int:
    config = tracking_config()
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
    print(f"The latest MLflow run ({run.info.status}) of experiment {config.experiment_name!r} in {shown_uri}:")
    print(f"  {config.run_url(experiment.experiment_id, run.info.run_id)}  (with iris-ui running)")
    print(NEXT_STEPS.format(model=settings.current().registered_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
