"""Starting and stopping the real servers the tests need, as local processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from iris_harness.environment import BIN, REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A command run in its own process group, stopped (with its children) by PID."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_dir: Path,
        env: dict | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        grace: float = 30,
    ):
        self.name = name
        self.grace = grace  # seconds from SIGINT to SIGKILL
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(BIN / args[0]), *args[1:]],  # a bare name is a command of this venv
            cwd=cwd or REPO_ROOT,
            env={**_inherited(), **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGINT (what Dagster's processes expect), then SIGKILL for the whole group."""
        stop_all([self])

    def _interrupt(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)

    def _finish(self, timeout: float) -> None:
        try:
            self.process.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # children (code servers, run workers)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
        self._log.close()


def _inherited() -> dict[str, str]:
    """This process's environment without the defaults the package derived in it from its own
    settings: a service derives them from its settings (MLflow's retries from its outage limit)."""
    from iris_assets.settings import DERIVED_PROCESS_DEFAULTS

    return {k: v for k, v in os.environ.items() if k not in DERIVED_PROCESS_DEFAULTS}


def stop_all(services: Iterable[Service]) -> None:
    """Stop services together, their grace periods running side by side rather than one
    after another (a whole topology's teardown took 98 s when they ran in a row)."""
    services = list(services)
    interrupted = time.monotonic()
    for service in services:
        service._interrupt()
    for service in services:
        service._finish(interrupted + service.grace - time.monotonic())


def wait_for_http(url: str, service: Service, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited {service.process.returncode}:\n{service.log()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s:\n{service.log()[-3000:]}")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def dagster_webserver(log_dir: Path, port: int, target: tuple[str, ...] = ("-w", "workspace.yaml")) -> Service:
    """dagster-webserver for ``target`` (workspace.yaml of the repository root) on 127.0.0.1:port, once it answers."""
    webserver = Service("webserver", ["dagster-webserver", *target, "-h", "127.0.0.1", "-p", str(port)], log_dir)
    _started(webserver, f"http://127.0.0.1:{port}/server_info")
    return webserver


def mlflow_server(log_dir: Path, port: int, store: str | None = None) -> Service:
    """`mlflow server` on 127.0.0.1:port: a sqlite store in log_dir (or ``store``), serving the artifacts itself."""
    server = Service(
        "mlflow",
        [
            "mlflow",
            "server",
            "--host=127.0.0.1",
            f"--port={port}",
            "--workers=1",
            f"--backend-store-uri={store or 'sqlite:///' + str(log_dir / 'mlflow-server.db')}",
            "--serve-artifacts",
            f"--artifacts-destination={log_dir / 'mlartifacts'}",
            f"--allowed-hosts=127.0.0.1:{port}",
        ],
        log_dir,
        # No background job runner: it starts seven more processes nothing here uses.
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    # The API, not /health: /health says 200 even when the API answers 403 to our Host header.
    _started(server, f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1", timeout=120)
    return server


def _started(service: Service, url: str, timeout: float = 90) -> None:
    try:
        wait_for_http(url, service, timeout)
    except BaseException:
        service.stop()
        raise
