"""The Iris ML pipeline as Dagster assets, each materialisation one MLflow run."""

from iris_assets.definitions import defs

__all__ = ["defs"]
