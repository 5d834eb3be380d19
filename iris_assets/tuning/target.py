"""Whose sweep: the pipeline a sweep trains for (Iris, or a dataset of ``datasets/``).

A sweep file's ``dataset`` (default ``iris``) names it. Each pipeline's code location has
its own sweep jobs, ``<dataset>_sweep`` and ``<dataset>_trial`` (trials are partitions of
``<dataset>_trials``); a sweep trains on that pipeline's latest ``splits``, records its
parent run in that pipeline's tuning experiment and registers its best trial as a version
of that pipeline's registered model. Iris's names are the ones it always had
(``iris_sweep``, ``iris_trial``, ``iris-hyperparameter-tuning``, ``$IRIS_REGISTERED_MODEL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import dagster as dg

from iris_assets import groups, settings

IRIS = "iris"


@dataclass(frozen=True)
class SweepTarget:
    dataset: str
    splits: dg.AssetKey  # the asset whose latest value every trial of a sweep trains and is scored on
    pipeline_job: str
    # None: the project's settings at run time ($IRIS_TUNING_EXPERIMENT, $IRIS_REGISTERED_MODEL).
    experiment: Optional[str] = None
    model_name: Optional[str] = None
    run_pipeline: str = ".venv/bin/dg launch --job iris_pipeline"

    def op(self, name: str) -> str:
        """A sweep op's name: Iris's as it always was (``open_sweep``), a dataset's prefixed (``wine__open_sweep``:
        op names are unique within a code location, and one location may hold every pipeline)."""
        return name if self.dataset == IRIS else f"{self.dataset}__{name}"

    @property
    def open_sweep(self) -> str:
        """The op whose config is the sweep (run config: ``ops.open_sweep.config``)."""
        return self.op("open_sweep")

    @property
    def sweep_job(self) -> str:
        return f"{self.dataset}_sweep"

    @property
    def trial_job(self) -> str:
        return f"{self.dataset}_trial"

    @property
    def trials_partitions(self) -> str:
        return f"{self.dataset}_trials"

    @property
    def trial_launcher(self) -> str:
        """The sensor starting the trials (Iris's keeps its name; each dataset's is its own)."""
        return "launch_sweep_trials" if self.dataset == IRIS else f"launch_{self.dataset}_sweep_trials"

    @property
    def no_splits(self) -> str:
        """The refusal of a sweep before its pipeline has run."""
        return f"no split to train on yet: run the pipeline once first ({self.run_pipeline})"

    def tuning_experiment(self) -> str:
        return self.experiment or settings.current().tuning_experiment

    def registered_model(self) -> str:
        return self.model_name or settings.current().registered_model


IRIS_TARGET = SweepTarget(IRIS, dg.AssetKey("splits"), groups.PIPELINE_JOB)


def target_of(dataset: str) -> SweepTarget:
    """The target a sweep file's ``dataset`` names: Iris, or a definition in ``datasets/``."""
    if dataset == IRIS:
        return IRIS_TARGET
    from iris_assets.datasets.definition import definition_path, load_definition

    return dataset_target(load_definition(definition_path(dataset)))


def dataset_target(definition) -> SweepTarget:
    """The sweep target of a dataset definition (``datasets/<name>.yaml``)."""
    return SweepTarget(
        definition.name,
        dg.AssetKey([definition.name, "splits"]),
        definition.job_name,
        experiment=definition.tuning_experiment,
        model_name=definition.registered_model,
        run_pipeline=f".venv/bin/dagster job execute -m iris_assets.datasets.locations -a {definition.name} "
        f"-j {definition.job_name}",
    )
