"""Fixtures: a real sqlite MLflow store and a real Dagster instance per test, both temporary."""

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from iris_harness.environment import QUIET_ENV, TEST_ENV

# Before the package is imported (it derives MLflow's retry count from the limit): a server
# the tests stop or never start is given up on in seconds, not a minute. The outage tests
# start their services with the default limit (reliability/test_scaleout.py).
os.environ.update(TEST_ENV)

# The quick lane (`bash scripts/test.sh -m quick`): the binding, the assets, the rule
# and bad input, without servers, concurrency or repetitions. A test of these modules
# marked `slow` stays out of it.
QUICK_MODULES = {
    "test_binding",
    "test_dagster_private",
    "test_data",
    "test_definitions",
    "test_packaging",
    "test_pipeline",
    "test_promotion",
    "test_settings",
    "test_training",
    "test_families",
    "test_bad_input",
    "test_sweep_files",
    "test_io_manager",
    "test_docs",
}


# The longest modules (seconds, `--durations`, on this 2-core machine),
# started first so one worker does not finish a long module alone at the end. Order
# only: nothing is asserted about time.
LONGEST_MODULES = {
    "test_benchmarks": 400,
    "test_deployed_faults": 350,
    "test_scaleout": 800,
    "test_sweeps": 320,
    "test_hardening": 185,
    "test_model_management": 110,
    "test_bad_input": 105,
    "test_binding": 105,
    "test_servers": 160,  # iris-ui twice (+60 s)
    "test_pipeline": 75,
    "test_datasets": 80,  # (~200 s now; this order measured best: 18:15 against 21:06 by durations)
    "test_browser": 70,
    "test_readme": 105,
}


def _module(item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1]


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _module(item) in QUICK_MODULES and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.quick)
    items.sort(key=lambda item: -LONGEST_MODULES.get(_module(item), 0))  # stable: file order otherwise


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory) -> Path:
    """An empty sqlite MLflow store, its schema migrated once per test process.

    Creating a store runs MLflow's migrations (1.5-2 CPU-seconds, in every process
    that first opens it): copied, each test's store is as new and costs nothing. The
    tests about new stores (concurrent first use) make their own.
    """
    from iris_assets.tracking.store import mlflow_client

    database = tmp_path_factory.mktemp("empty-mlflow-store") / "mlflow.db"
    mlflow_client(f"sqlite:///{database}")
    return database


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, empty_mlflow_store):
    """Every test gets its own state folder and MLflow store, set the way a user sets them."""
    import mlflow

    # A test that called mlflow.set_tracking_uri (as notebooks do) leaves MLflow's process-wide URI
    # behind, and it wins over $MLFLOW_TRACKING_URI: the next test on this worker would use that store.
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("IRIS_STATE_DIR", str(tmp_path / "state"))
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    shutil.copyfile(empty_mlflow_store, store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    monkeypatch.delenv("IRIS_MLFLOW_EXPERIMENT", raising=False)
    monkeypatch.chdir(tmp_path)  # anything written to the working folder stays in the test


@pytest.fixture
def tracking_uri() -> str:
    return os.environ["MLFLOW_TRACKING_URI"]


@pytest.fixture
def instance(tmp_path):
    """A persistent (sqlite) Dagster instance in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture
def dagster_home(instance) -> str:
    return os.environ["DAGSTER_HOME"]


# Paths a test leaves behind on purpose (screenshots...), listed at the end of the session.
LEFT_BEHIND: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for line in LEFT_BEHIND:
        terminalreporter.write_line(line)
