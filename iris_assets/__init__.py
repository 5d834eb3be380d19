"""The Iris ML pipeline as Dagster assets, each materialisation one MLflow run."""

from iris_assets import settings

# Set here, in the code location, so every run worker and step process inherits them.
settings.apply_process_defaults()

from iris_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
