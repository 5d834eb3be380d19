"""Fixtures: a real sqlite MLflow store and a real Dagster instance per test, both temporary."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Nothing under the home folder, nothing sent anywhere.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DAGSTER_DISABLE_TELEMETRY": "yes",
    "ORT_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "GIT_PYTHON_REFRESH": "quiet",
}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Every test gets its own state folder and MLflow store, set the way a user sets them."""
    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("IRIS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
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


def run_cli(*args: str, expect_ok: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command of this environment (dagster, python, ...) with the test's environment."""
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=os.getcwd(),
        env=os.environ.copy(),
    )
    if expect_ok and result.returncode != 0:
        raise AssertionError(
            f"{args} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n"
            f"--- stderr\n{result.stderr[-8000:]}"
        )
    return result


# Paths a test leaves behind on purpose (screenshots...), listed at the end of the session.
LEFT_BEHIND: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for line in LEFT_BEHIND:
        terminalreporter.write_line(line)
