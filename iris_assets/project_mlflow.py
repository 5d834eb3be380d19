"""The project's MLflow binding: ``MlflowRun`` with the defaults its settings name.

The binding (``iris_assets/tracking/``) knows nothing of this project; where the
``mlflow`` resource's config is silent, the project's runs go to ``$MLFLOW_TRACKING_URI``
else the embedded store ``.iris_state/mlflow.db``, the experiment ``$IRIS_MLFLOW_EXPERIMENT``
else ``relatorio-II-iris-pipeline``, and a "Materialize all" run is named after the
pipeline's job. Commands that read the store without a resource (``iris-ui``,
``iris-runs``, the last-run summary) resolve the same way: ``tracking_config()``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import dagster as dg

from iris_assets import config_errors, groups, settings
from iris_assets.tracking import MlflowRun
from iris_assets.tracking.config import Defaults, TrackingConfig, resolve


def project_defaults() -> Defaults:
    env = settings.current()
    return Defaults(
        tracking_uri=env.resolved_tracking_uri,
        tracking_uri_source="$MLFLOW_TRACKING_URI" if env.tracking_uri else "the embedded default store",
        experiment_name=env.experiment,
        ui_url=env.mlflow_ui_url,
        dagster_ui_url=env.dagster_ui_url,
        asset_job_run_name=groups.PIPELINE_JOB,
    )


def tracking_config(**explicit: Any) -> TrackingConfig:
    """Where the project tracks: ``explicit`` values (as the resource's config would give them), else its defaults."""
    return resolve(defaults=project_defaults(), **explicit)


class IrisMlflowRun(MlflowRun):
    """The ``mlflow`` resource of this project's definitions (its defaults: ``project_defaults``)."""

    def defaults(self) -> Defaults:
        return project_defaults()

    def pipeline(self) -> str:
        """The job of this resource's whole pipeline (it names the Definitions its runs are checked against)."""
        return groups.PIPELINE_JOB

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # A run started from a JobDefinition in this process (execute_in_process) has no executor of ours:
        # its refused config stops here, before its first step, as the executor stops it elsewhere.
        config_errors.refuse_in_process_run(context, self.pipeline())
        super().setup_for_execution(context)


class DatasetMlflowRun(IrisMlflowRun):
    """The ``mlflow`` resource of a dataset's code location (``datasets/``): its experiment is set in
    config (the definition's), and a "Materialize all" run is named after the dataset's job."""

    pipeline_job: str

    def defaults(self) -> Defaults:
        return dataclasses.replace(project_defaults(), asset_job_run_name=self.pipeline_job)

    def pipeline(self) -> str:
        return self.pipeline_job


class PipelinesMlflowRun(IrisMlflowRun):
    """The ``mlflow`` resource of the location holding every pipeline (``pipelines.all_pipelines_definitions``):
    a run's experiment and run name are its pipeline's, a dataset's when its assets are that dataset's
    (a run never holds two: ``execution.split``), else Iris's."""

    experiments: dict[str, str]  # dataset -> its experiment
    pipeline_jobs: dict[str, str]  # dataset -> its pipeline's job

    def dataset(self) -> Optional[str]:
        """The dataset of the Dagster run this resource is set up for; None for Iris's (or outside a run)."""
        run = self.dagster_run
        if run is None:
            return None
        for dataset, job in self.pipeline_jobs.items():
            if run.job_name == job:
                return dataset
        prefixes = {key.path[0] for key in run.asset_selection or () if len(key.path) > 1}
        found = sorted(prefixes & set(self.experiments))
        return found[0] if len(found) == 1 else None

    def defaults(self) -> Defaults:
        dataset = self.dataset()
        if dataset is None:
            return project_defaults()
        return dataclasses.replace(
            project_defaults(),
            experiment_name=self.experiments[dataset],
            asset_job_run_name=self.pipeline_jobs[dataset],
        )

    def pipeline(self) -> str:
        from iris_assets.pipelines import ALL_PIPELINES

        return ALL_PIPELINES
