"""What each code location holds, built without side effects (``location.load`` adds the guards).

* ``iris_definitions``: Iris's (``-m iris_assets``, workspace.yaml, ``dg``, ``iris-ui``);
* ``datasets.pipeline.dataset_definitions``: one dataset's (``-m iris_assets.datasets.locations -a wine``);
* ``all_pipelines_definitions``: Iris and every dataset of ``datasets/`` in one location
  (``-a all_pipelines``, workspace.datasets.yaml), where a run over several pipelines
  becomes one run per pipeline (``execution.split``), each one MLflow run in its experiment.
"""

import dagster as dg

ALL_PIPELINES = "all_pipelines"


def iris_definitions() -> dg.Definitions:
    """Iris's pipeline, sweeps, schedule and sensors (the location of workspace.yaml, dg and -m iris_assets)."""
    # Imported here, by the guards of location.load: a bad setting raises while these modules load.
    from iris_assets import config_errors
    from iris_assets.automation.jobs import iris_pipeline
    from iris_assets.automation.schedules import iris_retraining
    from iris_assets.automation.sensors import new_iris_data
    from iris_assets.console import compact_console
    from iris_assets.data import assets as data_assets
    from iris_assets.evaluation import assets as evaluation_assets
    from iris_assets.execution.executor import iris_executor
    from iris_assets.io_manager import RunScopedStorage
    from iris_assets.packaging import assets as packaging_assets
    from iris_assets.project_mlflow import IrisMlflowRun
    from iris_assets.registry import assets as registry_assets
    from iris_assets.runs.sensors import close_dead_runs, close_orphaned_mlflow_runs
    from iris_assets.tracking import credentials_from_environment
    from iris_assets.tracking.sensors import close_mlflow_run_on_cancel, close_mlflow_run_on_failure
    from iris_assets.training import assets as training_assets
    from iris_assets.tuning.jobs import iris_sweep, iris_trial
    from iris_assets.tuning.sensors import launch_sweep_trials

    definitions = dg.Definitions(
        assets=dg.load_assets_from_modules(
            [data_assets, training_assets, evaluation_assets, packaging_assets, registry_assets]
        ),
        jobs=[iris_pipeline, iris_sweep, iris_trial],
        schedules=[iris_retraining],
        sensors=[
            new_iris_data,
            close_mlflow_run_on_failure,
            close_mlflow_run_on_cancel,
            close_orphaned_mlflow_runs,
            close_dead_runs,
            launch_sweep_trials,
        ],
        resources={"mlflow": IrisMlflowRun(**credentials_from_environment()), "io_manager": RunScopedStorage()},
        executor=iris_executor,
        loggers={"console": compact_console},
    )
    return config_errors.remember_definitions(iris_pipeline.name, definitions)


def all_pipelines_definitions() -> dg.Definitions:
    """Iris and every dataset of ``datasets/``, one location: each pipeline an asset group with its jobs."""
    from iris_assets import config_errors
    from iris_assets.datasets.definition import definition_path, load_definition, shipped_names
    from iris_assets.datasets.pipeline import dataset_parts
    from iris_assets.io_manager import RunScopedStorage
    from iris_assets.project_mlflow import PipelinesMlflowRun
    from iris_assets.tracking import credentials_from_environment

    iris = iris_definitions()
    definitions = [load_definition(definition_path(name)) for name in shipped_names()]
    parts = [dataset_parts(definition) for definition in definitions]
    combined = dg.Definitions(
        assets=[*(iris.assets or []), *(asset for part in parts for asset in part.assets)],
        jobs=[*(iris.jobs or []), *(job for part in parts for job in part.jobs)],
        schedules=iris.schedules,
        sensors=[*(iris.sensors or []), *(part.trial_launcher for part in parts)],
        resources={
            "mlflow": PipelinesMlflowRun(
                experiments={d.name: d.experiment for d in definitions},
                pipeline_jobs={d.name: d.job_name for d in definitions},
                **credentials_from_environment(),
            ),
            "io_manager": RunScopedStorage(),
        },
        executor=iris.executor,
        loggers=iris.loggers,
    )
    return config_errors.remember_definitions(ALL_PIPELINES, combined)
