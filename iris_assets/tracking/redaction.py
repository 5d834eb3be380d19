"""What must never reach a store, a log or the UI: credentials in config, tags and URLs."""

import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlparse

from iris_assets.tracking.errors import MlflowBindingError

# Names that must not go into run config (`env`) or run tags (`env_to_tag`).
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|PRIVATE|API_KEY|ACCESS_KEY|USERNAME", re.I)


_USER_INFO = re.compile(r"(?<=://)[^/@\s:]*(?::[^/@\s]*)?@")


def database_address(url: object) -> str:
    """``host:port/database`` of a SQLAlchemy URL of PostgreSQL: no user, no password."""
    host, port, database = (getattr(url, name, None) for name in ("host", "port", "database"))
    return f"{host or 'localhost'}:{port or 5432}/{database}"


def redacted(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL in it removed."""
    return _USER_INFO.sub("", text)


def without_credentials(uri: str) -> str:
    """``uri`` without a ``user:password@`` part (event logs and tags are not secret)."""
    parts = urlparse(uri)
    if parts.password is None and parts.username is None:
        return uri
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def refuse_secrets_in_config(env: Mapping[str, str], env_to_tag: Iterable[str], tracking_uri: str | None) -> None:
    """Raise if the resource's config holds or names a credential."""
    if tracking_uri and without_credentials(tracking_uri) != tracking_uri:
        raise MlflowBindingError(
            f"The mlflow resource's `mlflow_tracking_uri` config holds credentials ({without_credentials(tracking_uri)} "
            "with a user:password@ part): run config is stored with every run and shown in the UI. Set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in the environment instead."
        )
    for name in env:
        if SECRET_NAME.search(name):
            raise MlflowBindingError(
                f"The mlflow resource's `env` config sets {name}, which looks like a credential: run "
                f"config is stored with every run and shown in the UI. Set {name} in the environment "
                "of the code server and run workers instead (read with dg.EnvVar)."
            )
    for name in env_to_tag:
        if SECRET_NAME.search(name):
            raise MlflowBindingError(
                f"The mlflow resource's `env_to_tag` lists {name}, which looks like a credential; "
                "MLflow tags are readable by anyone who can read the run. Remove it."
            )
