"""`iris-ui`: the Dagster UI (`dg dev`) and the MLflow UI on the project's state, in one command.

    iris-ui                       # http://127.0.0.1:3000 (Dagster) and http://127.0.0.1:5000 (MLflow)
    iris-ui --dagster-port 3001 --mlflow-port 5001

The Dagster UI runs on the project's instance ($DAGSTER_HOME, else .iris_state/dagster_home,
created if new), with its daemon (schedules, sensors, the run queue "Materialize" uses).
The MLflow UI serves the embedded store (.iris_state/mlflow.db); with $MLFLOW_TRACKING_URI
naming a server, that server is the MLflow UI and only Dagster starts. It prints both
URLs once both answer; Ctrl-C (or SIGTERM) stops both.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from iris_assets import settings

READY_TIMEOUT_S = 180  # dg dev loads the code location, then the webserver answers
STOP_GRACE_S = 30  # dg dev stops its webserver, daemon and code server on SIGINT


class UiError(Exception):
    """What the command cannot do, in one line."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="iris-ui", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface both UIs bind to (default: 127.0.0.1)")
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    args = parser.parse_args(argv)
    try:
        return _run(args.host, args.dagster_port, args.mlflow_port)
    except (UiError, settings.SettingError) as error:
        print(f"iris-ui: error: {error}", file=sys.stderr)
        return 2


def _run(host: str, dagster_port: int, mlflow_port: int) -> int:
    from iris_assets.runs.cli import initialise
    from iris_assets.tracking import config as tracking_config
    from iris_assets.tracking.redaction import without_credentials

    tracking = tracking_config.resolve()
    serves_mlflow = not tracking.tracking_uri.startswith(("http://", "https://"))
    # A second iris-ui (or a dg dev) on the same ports would start a second daemon on the
    # instance and lose the port to the first: refuse before starting anything.
    _refuse_if_taken(host, dagster_port, "--dagster-port")
    if serves_mlflow:
        _refuse_if_taken(host, mlflow_port, "--mlflow-port")
    home = initialise()  # the project's instance, made if new; sets $DAGSTER_HOME for the children
    bin_dir = Path(sys.executable).parent
    dagster_url = f"http://{host}:{dagster_port}"
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if not serves_mlflow:
            mlflow_url = without_credentials(tracking.ui_url)
            mlflow_note = f"the tracking server of $MLFLOW_TRACKING_URI ({without_credentials(tracking.tracking_uri)})"
            waits = {}
        else:
            mlflow_url = f"http://{host}:{mlflow_port}"
            mlflow_note = f"store {tracking.tracking_uri}"
            children["MLflow UI"] = _start(
                [str(bin_dir / "mlflow"), "ui", "--host", host, "--port", str(mlflow_port), "--workers", "1"]
                + ["--backend-store-uri", tracking.tracking_uri],
                settings.child_environment(bin_dir, {}),
                "mlflow",
            )
            waits = {"MLflow UI": f"{mlflow_url}/health"}
        # Links between the UIs (a run's MLflow link, an MLflow run's Dagster link) use these ports.
        links = {"MLFLOW_UI_URL": mlflow_url, "DAGSTER_UI_URL": dagster_url}
        children["Dagster UI"] = _start(
            [str(bin_dir / "dg"), "dev", "--host", host, "--port", str(dagster_port)],
            settings.child_environment(bin_dir, links),
            "dagster",
        )
        waits["Dagster UI"] = f"{dagster_url}/server_info"
        _wait_ready(children, waits, lambda: stopping)
        if not stopping:
            print(f"Dagster UI: {dagster_url}  (instance {home})", flush=True)
            print(f"MLflow UI:  {mlflow_url}  ({mlflow_note})", flush=True)
            print("Ctrl-C stops both.", flush=True)
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    raise UiError(f"the {name} exited (status {child.returncode}); see its output above")
            time.sleep(0.5)
        return 0
    finally:
        _stop_all(children.values())


def _refuse_if_taken(host: str, port: int, option: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is free
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UiError(
                f"{host}:{port} is taken ({error.strerror}): is iris-ui or dg dev already running? "
                f"Open http://{host}:{port}, stop what holds it, or choose another {option}"
            ) from None


def _start(command: list[str], env: dict[str, str], label: str) -> subprocess.Popen:
    try:
        # Own process group: a signal to this command reaches each child's whole tree once, from here.
        return subprocess.Popen(command, env=env, cwd=settings.PROJECT_ROOT, start_new_session=True)
    except OSError as error:
        raise UiError(f"cannot start {label} ({command[0]}): {error.strerror}; run bash scripts/install.sh") from None


def _wait_ready(children: dict[str, subprocess.Popen], urls: dict[str, str], stopping) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = dict(urls)
    while pending and not stopping():
        for name in list(pending):
            if children[name].poll() is not None:
                raise UiError(f"the {name} exited while starting (status {children[name].returncode}); see above")
            try:
                with urllib.request.urlopen(pending[name], timeout=2):
                    del pending[name]
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise UiError(
                f"{', '.join(pending)} did not answer within {READY_TIMEOUT_S} s: {', '.join(pending.values())}"
            )
        time.sleep(0.5)


def _stop_all(children) -> None:
    running = [child for child in children if child.poll() is None]
    for child in running:
        _signal_group(child, signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in running:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(child, signal.SIGKILL)
            child.wait()


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
