"""`iris-ui`: the Dagster UI (`dg dev`) and the MLflow UI on the project's state, in one command.

    iris-ui                       # http://127.0.0.1:3000 (Dagster) and http://127.0.0.1:5000 (MLflow)
    iris-ui --dagster-port 3001 --mlflow-port 5001

The Dagster UI runs on the project's instance ($DAGSTER_HOME, else .iris_state/dagster_home,
created if new), with its daemon (schedules, sensors, the run queue "Materialize" uses).
The MLflow UI serves the embedded store (.iris_state/mlflow.db); with $MLFLOW_TRACKING_URI
naming a server, that server is the MLflow UI and only Dagster starts. It prints where the
servers' logs go (.iris_state/logs/dagster.log and mlflow.log; the previous session's as
*.log.1), both URLs once both answer, then only what a user acts on: a line per run that
starts and per run that ends (why, if it failed), and a server that exits. Ctrl-C (or
SIGTERM) stops both.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from iris_assets import settings

READY_TIMEOUT_S = 180  # dg dev loads the code location, then the webserver answers
STOP_GRACE_S = 30  # dg dev stops its webserver, daemon and code server on SIGINT


class UiError(Exception):
    """What the command cannot do, in one line."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    # First: Ctrl-C before the children start must not end in a KeyboardInterrupt traceback.
    stopping = threading.Event()

    def stop(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    parser = argparse.ArgumentParser(prog="iris-ui", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface both UIs bind to (default: 127.0.0.1)")
    parser.add_argument("--dagster-port", type=int, default=3000)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    args = parser.parse_args(argv)
    try:
        return _run(args.host, args.dagster_port, args.mlflow_port, stopping)
    except (UiError, settings.SettingError) as error:
        print(f"iris-ui: error: {error}", file=sys.stderr, flush=True)
        return 2


def _run(host: str, dagster_port: int, mlflow_port: int, stopping: threading.Event) -> int:
    from iris_assets.project_mlflow import tracking_config
    from iris_assets.runs.cli import initialise
    from iris_assets.tracking.redaction import without_credentials

    tracking = tracking_config()
    serves_mlflow = not tracking.tracking_uri.startswith(("http://", "https://"))
    # A second iris-ui (or a dg dev) on the same ports would start a second daemon on the
    # instance and lose the port to the first: refuse before starting anything.
    _refuse_if_taken(host, dagster_port, "--dagster-port")
    if serves_mlflow:
        _refuse_if_taken(host, mlflow_port, "--mlflow-port")
    home = initialise()  # the project's instance, made if new; sets $DAGSTER_HOME for the children
    bin_dir = Path(sys.executable).parent
    dagster_url = f"http://{host}:{dagster_port}"
    logs = settings.current().ensure_state_dir() / "logs"
    logs.mkdir(exist_ok=True)
    children: dict[str, Child] = {}
    if stopping.is_set():  # Ctrl-C while the instance was being made: nothing to start
        return 0
    print(f"Logs: {_shown(logs / DAGSTER_LOG)} (webserver, daemon, code server)", flush=True)
    if serves_mlflow:
        print(f"      {_shown(logs / MLFLOW_LOG)} (MLflow UI)", flush=True)
    try:
        if not serves_mlflow:
            mlflow_url = without_credentials(tracking.ui_url)
            mlflow_note = f"the tracking server of $MLFLOW_TRACKING_URI ({without_credentials(tracking.tracking_uri)})"
            waits = {}
        else:
            mlflow_url = f"http://{host}:{mlflow_port}"
            mlflow_note = f"store {tracking.tracking_uri}"
            # `mlflow ui` waits on the uvicorn it starts without passing signals on: the group is
            # stopped with SIGTERM (SIGINT made the waiting parent print an ignored KeyboardInterrupt
            # traceback; uvicorn shuts down gracefully on either). No background job runner: seven
            # more processes for MLflow's GenAI jobs, which nothing here uses.
            children["MLflow UI"] = Child.start(
                [str(bin_dir / "mlflow"), "ui", "--host", host, "--port", str(mlflow_port), "--workers", "1"]
                + ["--backend-store-uri", tracking.tracking_uri],
                settings.child_environment(bin_dir, {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}),
                logs / MLFLOW_LOG,
                stop_signal=signal.SIGTERM,
                whole_group=True,
            )
            waits = {"MLflow UI": f"{mlflow_url}/health"}
        # Links between the UIs (a run's MLflow link, an MLflow run's Dagster link) use these ports.
        links = {"MLFLOW_UI_URL": mlflow_url, "DAGSTER_UI_URL": dagster_url}
        # `dg dev` stops its webserver, daemon and code servers itself on SIGINT (it tells them through
        # pipes): only it is signalled, so none of them is interrupted twice.
        children["Dagster UI"] = Child.start(
            [str(bin_dir / "dg"), "dev", "--host", host, "--port", str(dagster_port)],
            settings.child_environment(bin_dir, links),
            logs / DAGSTER_LOG,
            stop_signal=signal.SIGINT,
            whole_group=False,
        )
        waits["Dagster UI"] = f"{dagster_url}/server_info"
        _wait_ready(children, waits, stopping)
        if stopping.is_set():
            return 0
        print(f"Dagster UI: {dagster_url}  (instance {home})", flush=True)
        print(f"MLflow UI:  {mlflow_url}  ({mlflow_note})", flush=True)
        print("Ctrl-C stops both. Runs started and ended are listed here:", flush=True)
        watcher = RunWatcher(home, _say)
        watcher.start()
        while not stopping.wait(0.5):
            for name, child in children.items():
                if child.process.poll() is not None:
                    raise UiError(
                        f"the {name} exited (status {child.process.returncode}); its log: {_shown(child.log_path)}"
                    )
        return 0
    finally:
        if children and stopping.is_set():
            print("Stopping the UIs...", flush=True)
        _stop_all(children.values())


DAGSTER_LOG = "dagster.log"
MLFLOW_LOG = "mlflow.log"
POLL_S = 2.0  # how often the run list is read


def _shown(path: Path) -> str:
    """A path as the user can type it from here: relative under the working folder."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _say(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


class Child:
    """A UI process in its own session (Ctrl-C reaches only iris-ui), its output in a log file."""

    def __init__(self, process: subprocess.Popen, log_path: Path, stop_signal: int, whole_group: bool):
        self.process = process
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.whole_group = whole_group  # signal its whole process group, or only it

    @classmethod
    def start(
        cls, command: list[str], env: dict[str, str], log_path: Path, stop_signal: int, whole_group: bool
    ) -> Child:
        if log_path.exists():  # the previous session's log, kept once
            log_path.replace(log_path.with_name(log_path.name + ".1"))
        with open(log_path, "wb") as log:
            try:
                process = subprocess.Popen(
                    command, env=env, cwd=settings.PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            except OSError as error:
                raise UiError(f"cannot start {command[0]}: {error.strerror}; run bash scripts/install.sh") from None
        return cls(process, log_path, stop_signal, whole_group)

    def interrupt(self) -> None:
        try:
            if self.whole_group:
                os.killpg(self.process.pid, self.stop_signal)
            else:
                self.process.send_signal(self.stop_signal)
        except ProcessLookupError:
            pass


class RunWatcher(threading.Thread):
    """One line per run of the instance that starts, and per run that ends (with why, if it failed)."""

    def __init__(self, home: Path, out: Callable[[str], None], interval: float = POLL_S):
        super().__init__(name="iris-ui runs", daemon=True)
        self.home = home
        self.out = out
        self.interval = interval

    def run(self) -> None:
        import dagster as dg

        seen: dict[str, dg.DagsterRunStatus] = {}
        watching = since = time.time()
        failing: Optional[str] = None
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            while True:
                polled = time.time()
                try:
                    # Runs changed since the last look (with a margin for the clock of whoever wrote them).
                    records = instance.get_run_records(filters=dg.RunsFilter(updated_after=_utc(since - 10)))
                    for record in sorted(records, key=lambda record: record.create_timestamp):
                        self._report(instance, record, seen.get(record.dagster_run.run_id), watching)
                        seen[record.dagster_run.run_id] = record.dagster_run.status
                    since, failing = polled, None
                except Exception as error:  # the instance's storage busy or gone: say so once, keep trying
                    message = " ".join(str(error).split())[:300] or type(error).__name__
                    if message != failing:
                        self.out(f"cannot read the runs of {self.home}: {message}")
                    failing = message
                time.sleep(self.interval)

    def _report(self, instance: Any, record: Any, before: Any, watching: float) -> None:
        import dagster as dg

        status = record.dagster_run.status
        running = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}
        over = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
        if status == before or before in over:
            return
        name = f"run {record.dagster_run.run_id[:8]} {record.dagster_run.job_name}"
        began, ended = record.start_time, record.end_time
        # Started: now running, or over after a start (a run refused at launch never started);
        # not a run that was already running before iris-ui looked.
        if (
            before not in running
            and (status in running or (status in over and began is not None))
            and (began is None or began >= watching)
        ):
            self.out(f"{name} started")
        if status in over and (ended is None or ended >= watching):
            reason = (
                f": {_failure(instance, record.dagster_run.run_id)}" if status == dg.DagsterRunStatus.FAILURE else ""
            )
            self.out(f"{name} {status.value}{reason}")


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.timezone.utc)


def _failure(instance, run_id: str) -> str:
    """Why a run failed, in one line: its first step's error, else the run's own."""
    import dagster as dg

    from iris_assets.console import _error_message

    kinds = [dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE]
    for kind in kinds:
        for record in instance.get_records_for_run(run_id, of_type=kind, limit=1).records:
            event = record.event_log_entry.dagster_event
            message = _error_message(getattr(event.event_specific_data, "error", None)) or event.message or ""
            line = " ".join(message.split())
            if line:
                step = f"{event.step_key}: " if event.step_key else ""
                return step + (line if len(line) <= 300 else line[:297] + "...")
    return "see the run in the Dagster UI"


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


def _wait_ready(children: dict[str, Child], urls: dict[str, str], stopping: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    pending = dict(urls)
    while pending and not stopping.is_set():
        for name in list(pending):
            child = children[name]
            if child.process.poll() is not None:
                raise UiError(
                    f"the {name} exited while starting (status {child.process.returncode}); "
                    f"its log: {_shown(child.log_path)}"
                )
            try:
                with urllib.request.urlopen(pending[name], timeout=2):
                    del pending[name]
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise UiError(
                f"{', '.join(pending)} did not answer within {READY_TIMEOUT_S} s: {', '.join(pending.values())}"
            )
        stopping.wait(0.5)


def _stop_all(children) -> None:
    """Each child's stop signal, then SIGKILL to what is left of its process group after the grace period."""
    children = list(children)
    for child in children:
        if child.process.poll() is None:
            child.interrupt()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        # What the child started and left behind (a code server, a uvicorn worker) goes with it.
        while _group_alive(child.process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        try:
            os.killpg(child.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


if __name__ == "__main__":
    sys.exit(main())
