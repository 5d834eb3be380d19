"""The Iris ML pipeline as Dagster assets, each materialisation one MLflow run.

Importing the package (or its MLflow binding, ``iris_assets.tracking``, from another
project) sets only the process defaults below; the code location itself,
``iris_assets.definitions``, loads when Dagster asks for ``defs`` (``-m iris_assets``,
workspace.yaml) or imports it (``dg``).
"""

from typing import Any

from iris_assets import settings

# Set here, so every run worker and step process inherits them: MLflow's and onnxruntime's
# telemetry off, MLflow's HTTP retries within the outage limit, no credentials in the URI.
settings.apply_process_defaults()


def __getattr__(name: str) -> Any:
    if name == "defs":
        from iris_assets.definitions import defs

        return defs
    raise AttributeError(f"module 'iris_assets' has no attribute {name!r}")


def __dir__() -> list[str]:  # Dagster finds a module's Definitions among its dir()
    return sorted([*globals(), "defs"])


__all__ = ["defs"]
