"""One MLflow store and one Dagster instance for a whole test module, set the way a user sets them."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from iris_harness.environment import QUIET_ENV


@contextmanager
def module_store(tmp_path_factory, name: str) -> Iterator[tuple[Path, str, dg.DagsterInstance]]:
    """(folder, tracking URI, instance): a sqlite MLflow store and a Dagster instance in a new folder,
    the environment pointing at them while the module's fixture lives."""
    home = tmp_path_factory.mktemp(name)
    (home / "dagster_home").mkdir()
    with pytest.MonkeyPatch.context() as env:
        for key, value in QUIET_ENV.items():
            env.setenv(key, value)
        uri = f"sqlite:///{home / 'mlflow.db'}"
        env.setenv("MLFLOW_TRACKING_URI", uri)
        env.setenv("IRIS_STATE_DIR", str(home / "state"))
        with dg.instance_for_test(temp_dir=str(home / "dagster_home")) as instance:
            yield home, uri, instance
