"""The UI path and the daemon path, with real dagster-webserver and dagster-daemon processes."""

import json
import os
import signal
import urllib.request

import dagster as dg
import pytest

from iris_assets.automation.sensors import LANDING_FILE_TAG
from iris_assets.data.schema import CSV_COLUMNS, load_bundled_iris
from iris_assets.tuning.launch import REPOSITORY_SELECTOR
from iris_assets_tests.mlflow_checks import assert_complete_iris_run, only_run, runs_of
from iris_harness.environment import REPO_ROOT
from iris_harness.graphql_client import LAUNCH, graphql, launch_job, materialize_all, wait_for_run
from iris_harness.processes import Service, dagster_webserver, free_port, wait_until

pytestmark = pytest.mark.servers


def test_materialize_all_through_the_webserver_graphql_api(tmp_path, dagster_home, tracking_uri):
    """The mutation the UI's "Materialize all" sends, for the implicit asset job."""
    # Launch immediately instead of queueing for a daemon (the daemon path is tested below).
    with open(f"{dagster_home}/dagster.yaml", "a") as config:
        config.write("run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n")
    port = free_port()
    webserver = dagster_webserver(tmp_path, port)
    try:
        refused_run = _refused_launches(port)
        run_id, status = materialize_all(port)
        assert status == "SUCCESS", webserver.log()[-3000:]
        # The model asset's metadata holds its params, as logged to MLflow, read as the UI reads it.
        (materialization,) = graphql(port, MODEL_METADATA, {})["assetOrError"]["assetMaterializations"]
        assert materialization["runId"] == run_id
        entries = {entry["label"]: entry for entry in materialization["metadataEntries"]}
        params = json.loads(entries["params"]["jsonString"])
        assert params == {"family": "random_forest", "n_estimators": 100, "max_depth": 10, "random_state": 42}
        # The webserver's code server forked the run worker from its preloaded forkserver
        # (execution/run_workers.py), which stays up for the next run.
        group = [pid for pid in _pids() if _pgid(pid) == webserver.process.pid]
        assert any("multiprocessing.forkserver" in _cmdline(pid) for pid in group), [_cmdline(p) for p in group]
    finally:
        webserver.stop()
    # The one MLflow run is the materialisation's: the refused launch created none.
    run = assert_complete_iris_run(tracking_uri, only_run(tracking_uri))
    assert run.data.tags["dagster_job_name"] == "__ASSET_JOB"
    assert run.data.tags["dagster_run_id"] == run_id
    assert {name: str(value) for name, value in params.items()} == {name: run.data.params[name] for name in params}
    refused = dg.DagsterInstance.get().all_logs(refused_run)
    assert not [e for e in refused if e.dagster_event and e.dagster_event.is_step_event], "a step ran"


MODEL_METADATA = """
query { assetOrError(assetKey: {path: ["model"]}) { __typename ... on Asset {
  assetMaterializations(limit: 1) { runId metadataEntries { label ... on JsonMetadataEntry { jsonString } } } } } }
"""
RUN_FAILURE_MESSAGE = """
query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename
  ... on RunFailureEvent { error { message } } } } } }
"""


def _refused_launches(port: int) -> str:
    """The Launchpad with refused values (issue #29): an unknown family is refused by Dagster's config
    schema before a run exists (the Launchpad shows its message in the editor); n_estimators -3 fails the
    run before its first step, with one line naming the field, the value and what is allowed. The
    second run's id."""
    params = {
        "mode": "default",
        "runConfigData": json.dumps({"ops": {"model": {"config": {"family": "random_tree"}}}}),
        "executionMetadata": {"tags": []},
        "selector": {**REPOSITORY_SELECTOR, "pipelineName": "iris_pipeline"},
    }
    answer = graphql(port, LAUNCH, {"executionParams": params})["launchPipelineExecution"]
    assert answer["__typename"] == "RunConfigValidationInvalid", answer
    (error,) = answer["errors"]
    assert "family" in error["message"] and "random_tree" in error["message"], error
    run_id = launch_job(port, run_config={"ops": {"model": {"config": {"n_estimators": -3}}}})
    assert wait_for_run(port, run_id) == "FAILURE"
    events = graphql(port, RUN_FAILURE_MESSAGE, {"id": run_id})["logsForRun"]["events"]
    (failure,) = [event for event in events if event["__typename"] == "RunFailureEvent"]
    message = failure["error"]["message"].strip()
    assert message == (
        "iris_assets.config_errors.ConfigRefused: model: n_estimators=-3 is not allowed: "
        "expected an integer greater than 0 and at most 10000"
    ), message
    return run_id


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _cmdline(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _landing_file(folder, name, rows):
    folder.mkdir(parents=True, exist_ok=True)
    load_bundled_iris().frame[CSV_COLUMNS].iloc[rows].to_csv(folder / name, index=False)


def _sensor_runs(instance):
    return [r for r in instance.get_runs() if r.tags.get("dagster/sensor_name") == "new_iris_data"]


def _skip_reasons(instance, name: str) -> list[str]:
    reasons = []
    for state in instance.all_instigator_state():
        if state.instigator_name == name:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id)
            reasons += [t.skip_reason for t in ticks if t.skip_reason]
    return reasons


def test_daemon_runs_the_sensor_and_the_schedule(tmp_path, instance, tracking_uri):
    landing = tmp_path / "landing"
    _landing_file(landing, "half.csv", slice(0, 150, 2))  # 75 rows -> 15 test rows
    _landing_file(landing, "third.csv", slice(0, 150, 3))  # 50 rows -> 10 test rows
    (landing / "broken.csv").write_text("sepal_length,species\nlong,setosa\n")
    env = {
        "IRIS_LANDING_DIR": str(landing),
        "IRIS_SENSOR_INTERVAL_SECONDS": "2",
        "IRIS_RETRAIN_CRON": "* * * * *",  # a real tick within a minute
    }
    # The schedule is stopped by default: start it the way a user would.
    Service(
        "schedule-start", ["dagster", "schedule", "start", "iris_retraining", "-w", "workspace.yaml"], tmp_path, env
    ).process.wait(120)

    daemon = Service("daemon", ["dagster-daemon", "run", "-w", "workspace.yaml"], tmp_path, env)
    try:
        finished = lambda: [r for r in _sensor_runs(instance) if r.is_finished]  # noqa: E731
        wait_until(lambda: len(finished()) >= 2, timeout=300, what="two sensor runs to finish")
        wait_until(
            lambda: any("broken.csv" in r for r in _skip_reasons(instance, "new_iris_data")),
            timeout=60,
            what="a SkipReason naming broken.csv",
        )
        scheduled = wait_until(
            lambda: [
                r
                for r in instance.get_runs()
                if r.tags.get("dagster/schedule_name") == "iris_retraining" and r.is_finished
            ],
            timeout=180,
            what="a scheduled run to finish",
        )
    finally:
        daemon.stop()
    sensor_runs = _sensor_runs(instance)
    assert len(sensor_runs) == 2
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in sensor_runs), daemon.log()[-3000:]
    (reason,) = {r for r in _skip_reasons(instance, "new_iris_data") if "broken.csv" in r}
    assert "missing ['sepal_width', 'petal_length', 'petal_width']" in reason

    # Each sensor run trained on its own file, in its own MLflow run.
    by_file = {}
    for run in runs_of(tracking_uri):
        if LANDING_FILE_TAG in run.data.tags:
            by_file[run.data.tags[LANDING_FILE_TAG].rsplit("/", 1)[-1]] = run
    assert set(by_file) == {"half.csv", "third.csv"}
    from mlflow import MlflowClient

    for name, test_rows in (("half.csv", 15), ("third.csv", 10)):
        run = by_file[name]
        assert run.info.status == "FINISHED"
        matrix = json.load(
            open(MlflowClient(tracking_uri).download_artifacts(run.info.run_id, "confusion_matrix.json"))
        )
        assert sum(map(sum, matrix["matrix"])) == test_rows

    # The scheduled run is one MLflow run carrying the schedule's tags.
    scheduled_ids = {r.run_id for r in scheduled}
    scheduled_mlflow = [r for r in runs_of(tracking_uri) if r.data.tags["dagster_run_id"] in scheduled_ids]
    assert scheduled_mlflow and all(r.data.tags["dagster/schedule_name"] == "iris_retraining" for r in scheduled_mlflow)
    assert all("iris/scheduled_time" in r.data.tags for r in scheduled_mlflow)

    # A restarted daemon neither replays the files nor loses its place.
    restarted = Service("daemon-restarted", ["dagster-daemon", "run", "-w", "workspace.yaml"], tmp_path, env)
    try:
        ticks_before = len(_skip_reasons(instance, "new_iris_data"))
        wait_until(
            lambda: len(_skip_reasons(instance, "new_iris_data")) >= ticks_before + 3,
            timeout=120,
            what="three more sensor ticks",
        )
    finally:
        restarted.stop()
    assert len(_sensor_runs(instance)) == 2


@pytest.mark.parametrize("option", ["--dagster-port", "--mlflow-port"])
def test_iris_ui_refuses_a_taken_port_before_starting_anything(tmp_path, monkeypatch, capsys, option):
    """A second iris-ui (the README's step 1 done twice) would start a second daemon on the instance."""
    import socket

    from iris_assets import ui

    home = tmp_path / "new_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        ports = {"--dagster-port": str(free_port()), "--mlflow-port": str(free_port()), option: str(taken)}
        assert ui.main([argument for pair in ports.items() for argument in pair]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert f"127.0.0.1:{taken} is taken" in error and option in error, error
    assert not home.exists()  # refused before the instance was made


def test_iris_ui_prints_only_what_a_user_acts_on_and_ends_quietly(tmp_path):
    """Issue 29: iris-ui's console holds the log paths, the two URLs, a line per run started and
    ended, and nothing of the sensors ticking (their lines go to the log files it names);
    Ctrl-C (SIGINT to iris-ui alone, as a terminal's) stops both UIs with no traceback anywhere."""
    from iris_harness.environment import run_cli

    state = tmp_path / "ui_state"
    home = state / "dagster_home"
    env = {
        "IRIS_STATE_DIR": str(state),
        "DAGSTER_HOME": str(home),
        # The sensors tick every 2 s instead of every 30 s: a minute of an idle UI in seconds.
        "IRIS_SENSOR_INTERVAL_SECONDS": "2",
        "IRIS_ORPHAN_SWEEP_SECONDS": "2",
    }
    dagster_port, mlflow_port = free_port(), free_port()
    ui = Service("iris-ui", ["iris-ui", "--dagster-port", str(dagster_port), "--mlflow-port", str(mlflow_port)],
                 tmp_path, env, cwd=tmp_path)  # fmt: skip
    logs = state / "logs"
    try:
        wait_until(lambda: "MLflow UI:" in ui.log() or ui.process.poll() is not None, timeout=240, what="both URLs")
        dagster_log = (logs / "dagster.log").read_text()
        ticks_at_ready = dagster_log.count("SensorDaemon")
        # ~30 s idle: sensor ticks (a dozen each) land in the log, not on the console.
        wait_until(
            lambda: (logs / "dagster.log").read_text().count("SensorDaemon") >= ticks_at_ready + 40,
            timeout=120,
            what="sensor ticks in dagster.log",
        )
        assert ui.log().splitlines() == [
            "Logs: ui_state/logs/dagster.log (webserver, daemon, code server)",  # from its working folder
            "      ui_state/logs/mlflow.log (MLflow UI)",
            f"Dagster UI: http://127.0.0.1:{dagster_port}  (instance {home})",
            f"MLflow UI:  http://127.0.0.1:{mlflow_port}  (store {os.environ['MLFLOW_TRACKING_URI']})",
            "Ctrl-C stops both. Runs started and ended are listed here:",
        ], ui.log()

        # A run from a terminal, on the instance the UI shows: one line when it starts, one when it ends.
        os.environ.update(env)  # run_cli passes this process's environment (monkeypatched per test)
        try:
            run_cli("dg", "launch", "--job", "iris_pipeline", cwd=REPO_ROOT, expect_ok=False)
        finally:
            for key in env:
                del os.environ[key]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            (run,) = instance.get_runs()
        short = f"run {run.run_id[:8]} iris_pipeline"
        wait_until(lambda: f"{short} {run.status.value}" in ui.log(), timeout=30, what=f"{short} ended")
        assert run.status == dg.DagsterRunStatus.SUCCESS, ui.log()
        assert [line.split(" ", 1)[1] for line in ui.log().splitlines()[5:]] == [f"{short} started", f"{short} SUCCESS"]
    finally:
        ui.stop()
    output = ui.log()
    assert ui.process.returncode == 0, output  # stopped by its SIGINT, not killed after the grace period
    assert output.splitlines()[-1] == "Stopping the UIs...", output
    for text in (output, (logs / "dagster.log").read_text(), (logs / "mlflow.log").read_text()):
        assert "Traceback" not in text and "KeyboardInterrupt:" not in text and "Exception ignored" not in text, text
    # The logs hold the servers' whole output: the daemon's sensor ticks, the webserver, MLflow's server.
    dagster_log = (logs / "dagster.log").read_text()
    assert (
        "SensorDaemon" in dagster_log and f"Serving dagster-webserver on http://127.0.0.1:{dagster_port}" in dagster_log
    )
    assert f"Uvicorn running on http://127.0.0.1:{mlflow_port}" in (logs / "mlflow.log").read_text()
    for port in (dagster_port, mlflow_port):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=2)


def test_iris_ui_says_in_one_line_which_server_exited_and_where_its_log_is(tmp_path):
    """A UI server that dies (here MLflow's, killed) ends iris-ui with one line naming it and its log
    file, and the other UI is stopped with it."""
    state = tmp_path / "ui_state"
    env = {"IRIS_STATE_DIR": str(state), "DAGSTER_HOME": str(state / "dagster_home")}
    dagster_port, mlflow_port = free_port(), free_port()
    ui = Service("iris-ui", ["iris-ui", "--dagster-port", str(dagster_port), "--mlflow-port", str(mlflow_port)],
                 tmp_path, env, cwd=tmp_path)  # fmt: skip
    try:
        wait_until(lambda: "MLflow UI:" in ui.log() or ui.process.poll() is not None, timeout=240, what="both URLs")
        (mlflow_ui,) = [pid for pid in _pids() if f"mlflow ui --host 127.0.0.1 --port {mlflow_port} " in _cmdline(pid)]
        os.killpg(mlflow_ui, signal.SIGKILL)
        assert ui.process.wait(timeout=60) == 2, ui.log()
    finally:
        ui.stop()
    assert (
        ui.log().splitlines()[-1]
        == "iris-ui: error: the MLflow UI exited (status -9); its log: ui_state/logs/mlflow.log"
    )
    assert "Traceback" not in ui.log(), ui.log()
    with pytest.raises(OSError):  # the Dagster UI went with it
        urllib.request.urlopen(f"http://127.0.0.1:{dagster_port}", timeout=2)
