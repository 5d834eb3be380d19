"""The Iris ML pipeline as Dagster assets, each materialisation one MLflow run."""

from iris_assets import settings

# Set here, in the code location, so every run worker and step process inherits them.
settings.apply_process_defaults()

from iris_assets.definitions import defs  # noqa: E402
from iris_assets.execution.run_workers import fork_run_workers  # noqa: E402

# In a code server, run workers are forked from a preloaded forkserver (execution/run_workers.py).
fork_run_workers()

__all__ = ["defs"]
