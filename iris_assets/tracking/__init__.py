"""The MLflow binding: one Dagster run is recorded as exactly one MLflow run.

- ``resource``: ``MlflowRun``, what assets log through;
- ``config``: where and how to track, resolved once (resource config over the environment);
- ``election``: which MLflow run a Dagster run is bound to, through the event log;
- ``closing``: every path that ends an MLflow run, with ``executor`` and ``sensors``;
- ``store``: clients that retry, sqlite locks, artifact locations, error wording;
- ``redaction``, ``lineage``, ``tags``, ``errors``: what they say.
"""

from iris_assets.tracking.errors import MlflowBindingError
from iris_assets.tracking.resource import MlflowRun, credentials_from_environment

__all__ = ["MlflowBindingError", "MlflowRun", "credentials_from_environment"]
