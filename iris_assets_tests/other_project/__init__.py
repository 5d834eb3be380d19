"""A Dagster project that is not this one, using the MLflow binding the way any project would.

It imports ``iris_assets.tracking`` and nothing else of iris_assets, and logs the way
MLflow users write: the fluent API, autologging, the seed's ``start_run(run_id=...)``,
dagster-mlflow's own two-op scenario with its hook. Loaded as a code location of its
own: ``dagster job execute -m iris_assets_tests.other_project -j JOB``.
"""

from iris_assets_tests.other_project.definitions import defs

__all__ = ["defs"]
