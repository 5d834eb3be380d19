"""One code location per dataset: ``python_module: {module_name: iris_assets.datasets.locations, attribute: wine}``.

Any attribute of this module named after a definition in ``datasets/`` (``wine``, ``digits``,
yours) is that dataset's Definitions, loaded with the same guards as Iris's location
(``definitions.load``): a terminal command on a temporary instance or with a refused run
config stops in one line. Why a location per dataset: one Dagster run is one MLflow run,
and two datasets in one location would share a "Materialize all" run, hence an MLflow run.
Across locations Dagster 1.13 refuses a global "Materialize all" ("Unable to Materialize"):
a dataset's own UI is ``dagster dev -m iris_assets.datasets.locations -a <name>``.
"""

import functools
from typing import Any

import dagster as dg


@functools.cache
def dataset_location(name: str) -> dg.Definitions:
    from iris_assets.datasets.definition import definition_path, load_definition
    from iris_assets.datasets.pipeline import dataset_definitions
    from iris_assets.location import load

    definition = load_definition(definition_path(name))
    return load(lambda: dataset_definitions(definition))


def __getattr__(name: str) -> Any:
    from iris_assets.datasets.definition import shipped_names

    if name in shipped_names():
        return dataset_location(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; the datasets are {shipped_names()}")
