"""The code location: what `dagster dev`, `dg`, `-m iris_assets` and workspace.yaml load.

Loading it also does what only a code location should: a terminal command that would run
on a temporary instance, or with a bad setting or a refused run config, stops in one line
before any work; a code server forks its run workers from a preloaded forkserver.
"""

import dagster as dg

from iris_assets.location import load


def _definitions() -> dg.Definitions:
    # Imported here, after the refusals below: a bad setting raises while these modules load.
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


defs = load(_definitions)
