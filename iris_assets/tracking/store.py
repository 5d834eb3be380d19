"""The tracking store: clients that retry, sqlite locks, artifact locations, and errors that explain.

Every MlflowClient the project uses comes from ``mlflow_client``.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlparse

from iris_assets.tracking.config import TrackingConfig
from iris_assets.tracking.errors import MlflowBindingError
from iris_assets.tracking.redaction import redacted, without_credentials

if TYPE_CHECKING:
    from mlflow import MlflowClient


def mlflow_client(tracking_uri: str, source: str = "the run's announcement") -> MlflowClient:
    """An MlflowClient for ``tracking_uri`` (its registry too) that retries transient store errors,
    and says which store is unreachable (and where its URI came from) when it is."""
    from mlflow import MlflowClient

    # The registry URI explicitly: left out, MlflowClient takes the process-global one.
    # Constructing the client builds the tracking store (a new sqlite store's tables);
    # the first call on the registry builds its store, hence the search, both locked.
    with sqlite_setup_lock(tracking_uri) as first_use:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        if first_use:
            client.search_registered_models(max_results=1)
    return _RetryingClient(client, tracking_uri, source)  # type: ignore[return-value]


# What requests/urllib3 say, inside MLflow's exceptions, when a tracking server cannot be reached.
_UNREACHABLE = (
    "Max retries exceeded",
    "Connection refused",
    "Failed to resolve",
    "Connection aborted",
    "Remote end closed connection",
    "Read timed out",
)


# What urllib3 says, inside MLflow's error, when a server kept answering 5xx until the retries ran out: it
# is up, and what failed is behind it. On an artifact upload through its proxy (`mlflow server
# --serve-artifacts`), that is the object store of its artifacts destination; otherwise its backend store.
_KEPT_ANSWERING_5XX = re.compile(r"too many (5\d\d) error responses")
_ARTIFACT_PROXY_PATH = "/api/2.0/mlflow-artifacts/"


@contextmanager
def explained(tracking_uri: str, source: str) -> Iterator[None]:
    """A tracking server that cannot be reached raises MlflowBindingError naming it, not MLflow's retry error."""
    try:
        yield
    except MlflowBindingError:
        raise
    except Exception as error:
        if any(marker in str(error) for marker in _UNREACHABLE):
            raise MlflowBindingError(store_problem(tracking_uri, source, error)) from error
        raise


# MLflow's process-global URIs, which some calls read (a flavour's log_model and
# load_model), are set and restored under this lock, so concurrent bindings to
# different stores in one process stay apart.
_GLOBAL_MLFLOW_STATE = threading.Lock()
GLOBAL_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def global_store(tracking_uri: str, source: str) -> Iterator[None]:
    """MLflow's global tracking and registry URIs set to ``tracking_uri`` for the duration, then restored.

    ``mlflow.set_tracking_uri`` / ``set_registry_uri`` also write the environment
    variables subprocesses inherit; those are restored too.
    """
    import mlflow

    with _GLOBAL_MLFLOW_STATE:
        saved = {name: os.environ.get(name) for name in GLOBAL_URI_VARIABLES}
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        try:
            with explained(tracking_uri, source):
                yield
        finally:
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # back to the environment's
            mlflow.set_registry_uri(None)  # type: ignore[arg-type]
            restore_environment(saved)


def restore_environment(saved: dict[str, Optional[str]]) -> None:
    """Put variables back as a snapshot had them (None: unset)."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


class _RetryingClient:
    """An MlflowClient whose calls retry transient store errors a few times, with backoff.

    Concurrent step processes writing one run hit, for instance, the sqlite store's
    non-atomic tag upsert ("UNIQUE constraint failed: tags.key, tags.run_uuid") or
    "database is locked"; a second attempt succeeds. Other errors raise at once.
    """

    TRANSIENT = ("UNIQUE constraint failed", "database is locked", "could not serialize access")
    ATTEMPTS = 5

    def __init__(self, client: MlflowClient, tracking_uri: str, source: str):
        self._client = client
        self._store = (tracking_uri, source)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            import time

            with explained(*self._store):
                for attempt in range(self.ATTEMPTS):
                    try:
                        return attribute(*args, **kwargs)
                    except Exception as error:
                        transient = any(marker in str(error) for marker in self.TRANSIENT)
                        if not transient or attempt == self.ATTEMPTS - 1:
                            raise
                        time.sleep(0.05 * 2**attempt)

        return call


def open_experiment(config: TrackingConfig) -> tuple[MlflowClient, str]:
    """A client of the configured store and the id of the configured experiment (created if new).

    Any problem becomes an MlflowBindingError saying which store, from where, and why.
    """
    try:
        check_tracking_uri(config.tracking_uri)
        client = mlflow_client(config.tracking_uri, config.tracking_uri_source)
        return client, _experiment_id(client, config.experiment_name, config.tracking_uri)
    except MlflowBindingError:
        raise
    except Exception as error:
        raise MlflowBindingError(store_problem(config.tracking_uri, config.tracking_uri_source, error)) from error


def _experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(tracking_uri, name))
        except MlflowException as error:  # created concurrently by another step
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise MlflowBindingError(
                    f"Could not create MLflow experiment {name!r} in {without_credentials(tracking_uri)}: {error}"
                ) from error
    if experiment.lifecycle_stage != "active":
        raise MlflowBindingError(
            f"MLflow experiment {name!r} (id {experiment.experiment_id}) is deleted in "
            f"{without_credentials(tracking_uri)}: restore it (`mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}`) or choose another name ($IRIS_MLFLOW_EXPERIMENT)."
        )
    return experiment.experiment_id


def check_tracking_uri(tracking_uri: str) -> None:
    """Refuse at once what MLflow would only refuse after minutes of retries."""
    parts = urlparse(tracking_uri)
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ValueError("an http(s) tracking URI needs a host, as in http://127.0.0.1:5000")


def store_problem(tracking_uri: str, source: str, error: Exception) -> str:
    """A one-paragraph explanation of why the tracking store could not be used."""
    shown = f"{without_credentials(tracking_uri)!r} (from {source})"
    detail = redacted(str(error).strip().splitlines()[0])[:400] if str(error).strip() else type(error).__name__
    if isinstance(error, ModuleNotFoundError) and "psycopg" in str(error):
        return (
            f"MLflow tracking URI {shown} needs a PostgreSQL driver that is not installed "
            f"({detail}): SQLAlchemy reads postgresql:// as psycopg 3; write "
            "postgresql+psycopg2:// to use the installed psycopg2."
        )
    if any(marker in str(error) for marker in _UNREACHABLE):
        from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES

        retries = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()
        answered = _KEPT_ANSWERING_5XX.search(str(error))
        if answered and _ARTIFACT_PROXY_PATH in str(error):
            return (
                f"The object store behind MLflow tracking server {shown} (the server's artifacts destination) "
                f"is unavailable: the server answered {answered.group(1)} to an artifact upload through its "
                f"proxy {retries + 1} times with backoff: {detail}"
            )
        if answered:
            return (
                f"MLflow tracking server {shown} answered {answered.group(1)} {retries + 1} times with backoff "
                f"(its backend store may be unavailable): {detail}"
            )
        return f"MLflow tracking server {shown} is unreachable (gave up after {retries} retries with backoff): {detail}"
    return f"MLflow tracking URI {shown} cannot be used: {detail}"


# -- sqlite: one file on one host, so file locks serialise what its migrations cannot --------------


def sqlite_database(tracking_uri: str) -> Optional[Path]:
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes of this host (a sqlite file is local by definition)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def sqlite_setup_lock(tracking_uri: str) -> Iterator[bool]:
    """Serialise a new sqlite store's first use across processes on this host; yields
    whether this may be the first use (the lock is then held).

    MLflow creates a sqlite store's tables (alembic migrations) on first use; two
    processes doing that at once (two steps, or a step and a daemon's sensor) fail
    ("Online migration expected to match one row", "duplicate column name"). Once a
    process has set the store up, a marker file lets later ones skip the lock.
    """
    database = sqlite_database(tracking_uri)
    if database is None or (database.with_name(database.name + ".ready").exists() and database.exists()):
        yield False
        return
    with _file_lock(database.with_name(database.name + ".setup-lock")):
        yield True
        database.with_name(database.name + ".ready").touch()


@contextmanager
def sqlite_registry_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise model registrations into one sqlite store across processes on this host.

    MLflow numbers a new version max+1 and retries a few times on a collision;
    runs finishing together on the embedded store need not rely on that. A server
    (PostgreSQL) needs no lock.
    """
    database = sqlite_database(tracking_uri)
    if database is None:
        yield
        return
    with _file_lock(database.with_name(database.name + ".registry-lock")):
        yield


def artifact_location(tracking_uri: str, experiment_name: str) -> Optional[str]:
    """Keep a sqlite store's artifacts next to its database, not in the current folder.

    (MLflow's default for a sqlite store is ``./mlruns`` relative to wherever the
    process happens to run.) Servers choose their own artifact location.
    """
    database = sqlite_database(tracking_uri)
    if database is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment_name)
    return (database.parent / "mlartifacts" / slug).as_uri()
