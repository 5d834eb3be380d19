"""The datasets' code locations: ``python_module: {module_name: iris_assets.datasets.locations, attribute: wine}``.

* an attribute named after a definition in ``datasets/`` (``wine``, ``digits``, yours) is that
  dataset's own location;
* ``all_pipelines`` is Iris and every dataset in one location (workspace.datasets.yaml), where
  a run over several pipelines ("Materialize all" on the global lineage page) becomes one run
  per pipeline before its first step (``execution/split.py``).

Each is loaded with the same guards as Iris's location (``location.load``): a terminal command
on a temporary instance or with a refused run config stops in one line. One Dagster run is one
MLflow run in either: a run never holds two datasets (docs/datasets.md says why this design).
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


@functools.cache
def all_pipelines_location() -> dg.Definitions:
    from iris_assets.location import load
    from iris_assets.pipelines import all_pipelines_definitions

    return load(all_pipelines_definitions)


def __getattr__(name: str) -> Any:
    from iris_assets.datasets.definition import shipped_names
    from iris_assets.pipelines import ALL_PIPELINES

    if name == ALL_PIPELINES:
        return all_pipelines_location()
    if name in shipped_names():
        return dataset_location(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; the datasets are {shipped_names()}")
