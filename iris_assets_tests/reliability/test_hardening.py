"""Hardening: killed CLI runs, a tracking server lost with no daemon, credentials in the URI,
a brand-new instance used five times at once, and the settings checked when definitions load.

Real `dagster job execute` processes on a sqlite Dagster instance, a real `mlflow server`,
and the `iris-runs` command.
"""

import json
import os
import shlex
import signal
import subprocess

import dagster as dg
import pytest
from mlflow import MlflowClient

from iris_assets.runs.sensors import close_dead_runs
from iris_assets.runs.summary import reports_success
from iris_assets.runs.workers import RUN_WORKER_TAG
from iris_assets.tracking.tags import DAGSTER_RUN_IDS_TAG
from iris_assets_tests.mlflow_checks import assert_complete_iris_run, only_run
from iris_assets_tests.reliability.conftest import repeat
from iris_harness.environment import BIN, QUIET_ENV, REPO_ROOT, run_cli
from iris_harness.processes import free_port, mlflow_server, wait_until
from iris_harness.runs import start_job_execute, wait_for_step_start

# A forest big enough that the model step is still running when the fault lands.
SLOW = {"ops": {"model": {"config": {"n_estimators": 300}}}}
# Still training when its run worker is killed (300 trees on every core took 1.4 s, done before the kill).
SLOWER_TREES = 1000
SLOWER = {"ops": {"model": {"config": {"n_estimators": SLOWER_TREES, "n_jobs": 1}}}}
MULTIPROCESS = {"execution": {"config": {"multiprocess": {"max_concurrent": 1}}}}


def _store_in_config(tracking_uri: str) -> dict:
    # The store in run config too: re-executions inherit it, whatever process runs them.
    return {"resources": {"mlflow": {"config": {"mlflow_tracking_uri": tracking_uri}}}}


def _kill(process: subprocess.Popen, group: bool) -> None:
    if group:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def _started_run(instance, tmp_path, config: dict, name: str = "run"):
    """A CLI run of the pipeline, once its model step has started: (process, Dagster run)."""
    process = start_job_execute(config, tmp_path, name)
    step = wait_for_step_start(instance, "model")
    wait_until(lambda: instance.get_run_by_id(step.run_id).tags.get(RUN_WORKER_TAG), 60, "the worker tag")
    return process, instance.get_run_by_id(step.run_id)


def _step_process_pid(instance, run_id: str, step_key: str) -> int:
    """The pid of a multiprocess step's process, from the event it logs as it starts."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED):
        if entry.step_key == step_key:
            return int(entry.dagster_event.event_specific_data.metadata["pid"].value)
    raise AssertionError(f"no step process of {step_key} in run {run_id}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def _iris_runs(*args: str) -> subprocess.CompletedProcess:
    return run_cli("iris-runs", *args, expect_ok=False, timeout=600)


def _finish_by_reexecution(instance, tracking_uri, run_id: str, mlflow_run_id: str, n_estimators: int = 300):
    result = _iris_runs("reexecute", run_id)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    child = [r for r in instance.get_runs() if r.parent_run_id == run_id]
    assert len(child) == 1 and child[0].status == dg.DagsterRunStatus.SUCCESS
    run = MlflowClient(tracking_uri).get_run(mlflow_run_id)
    assert run.data.tags[DAGSTER_RUN_IDS_TAG].split() == [run_id, child[0].run_id]
    assert_complete_iris_run(tracking_uri, run, n_estimators=n_estimators)
    return child[0]


@repeat()
def test_killed_cli_run_is_closed_by_the_command_and_continued(
    dagster_home, instance, tracking_uri, tmp_path, outcome, repetition
):
    """`kill -9` of `dagster job execute` (in-process) mid-step, no daemon: `iris-runs close` marks it failed and ends the MLflow run FAILED; `iris-runs reexecute` finishes the same MLflow run"""
    process, run = _started_run(instance, tmp_path, {**SLOW, **_store_in_config(tracking_uri)})
    _kill(process, group=True)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # what Dagster alone leaves
    mlflow_run = only_run(tracking_uri)
    assert mlflow_run.info.status == "RUNNING"

    closed = _iris_runs("close")
    assert closed.returncode == 0, closed.stderr[-3000:]
    assert f"run {run.run_id}: worker" in closed.stdout and "marked FAILURE" in closed.stdout, closed.stdout
    failed = instance.get_run_by_id(run.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    message = [e.message for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
    assert any("run worker" in m and "is gone" in m for m in message), message
    assert only_run(tracking_uri).info.status == "FAILED"
    assert run.run_id not in _iris_runs("close").stdout  # idempotent: a second pass closes nothing
    _finish_by_reexecution(instance, tracking_uri, run.run_id, mlflow_run.info.run_id)
    outcome.note(
        "Dagster run STARTED and MLflow RUNNING after the kill; `iris-runs close`: FAILURE naming the dead worker, MLflow FAILED; `iris-runs reexecute`: same MLflow run FINISHED"
    )


@repeat()
def test_killed_multiprocess_parent_is_closed_by_the_daemon_sensor(
    dagster_home, instance, tracking_uri, tmp_path, outcome, repetition
):
    """`kill -9` of the multiprocess executor's parent mid-step: its step process ends with it (writing nothing more), the daemon's `close_dead_runs` sensor closes the run; re-execution continues the MLflow run"""
    process, run = _started_run(instance, tmp_path, {**SLOWER, **MULTIPROCESS, **_store_in_config(tracking_uri)})
    step_pid = _step_process_pid(instance, run.run_id, "model")
    assert _alive(step_pid)  # the step runs: the case is a run worker dying under it
    _kill(process, group=False)  # the run worker only: its step process ends with it (forkserver_ready.py)
    wait_until(lambda: not _alive(step_pid), 30, "the step process to end with its run worker")
    mlflow_run = only_run(tracking_uri)
    with dg.build_sensor_context(instance=instance) as context:  # what the daemon evaluates
        reason = close_dead_runs(context)
    assert "closed 1 run" in reason.skip_message, reason.skip_message
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    wait_until(lambda: only_run(tracking_uri).info.status == "FAILED", 120, "the MLflow run to end FAILED")
    assert not [
        e for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS) if e.step_key == "model"
    ]
    _finish_by_reexecution(instance, tracking_uri, run.run_id, mlflow_run.info.run_id, n_estimators=SLOWER_TREES)
    outcome.note(
        "the orphaned step process ended with its run worker; sensor: run FAILURE, MLflow FAILED; "
        "re-execution: same MLflow run FINISHED"
    )


@pytest.fixture
def server(tmp_path):
    """A real `mlflow server` that a test may stop and start again on the same port and store."""
    port = free_port()
    state = {"service": mlflow_server(tmp_path, port), "url": f"http://127.0.0.1:{port}"}

    def stop():
        state["service"].stop()

    def start():
        state["service"] = mlflow_server(tmp_path, port)

    state.update(stop=stop, start=start)
    yield state
    state["service"].stop()


@repeat()
def test_tracking_server_lost_mid_step_without_a_daemon(
    dagster_home, instance, server, tmp_path, monkeypatch, outcome, repetition
):
    """MLflow server stopped mid-step, no daemon: the step fails naming the server; once it is back `iris-runs close` ends the MLflow run FAILED and re-execution finishes it"""
    uri = server["url"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    process, run = _started_run(instance, tmp_path, SLOW)
    mlflow_run_id = wait_until(lambda: only_run(uri).info.run_id, 60, "the MLflow run")
    server["stop"]()
    try:
        assert process.wait(timeout=600) != 0
        failed = instance.get_run_by_id(run.run_id)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        text = "\n".join(
            e.dagster_event.step_failure_data.error.to_string()
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
        )
        assert (
            "MlflowBindingError" in text and f"MLflow tracking server '{uri}'" in text and "is unreachable" in text
        ), text[-3000:]
    finally:
        server["start"]()
    assert MlflowClient(uri).get_run(mlflow_run_id).info.status == "RUNNING"  # nothing could end it while down
    closed = _iris_runs("close")
    assert f"MLflow run {mlflow_run_id}: left RUNNING by a finished Dagster run; ended FAILED" in closed.stdout, closed
    _finish_by_reexecution(instance, uri, run.run_id, mlflow_run_id)
    outcome.note(
        "step failed with MlflowBindingError naming the server; MLflow run RUNNING until `iris-runs close` (FAILED); re-execution: same run FINISHED"
    )


def test_credentials_in_the_tracking_uri_appear_nowhere(dagster_home, instance, server, tmp_path, monkeypatch, outcome):
    """Tracking URI with `user:password@`: the password is in no event, tag, compute log or output"""
    secret = "sentinel-uri-password-5d1c"
    port = server["url"].rsplit(":", 1)[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://iris-user:{secret}@127.0.0.1:{port}")
    result = run_cli("dagster", "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline", timeout=600)
    output = result.stdout + result.stderr
    assert reports_success(output) and secret not in output
    (run,) = instance.get_runs()
    events = "".join(dg.serialize_value(entry) for entry in instance.all_logs(run.run_id))
    assert secret not in events and f"http://127.0.0.1:{port}/#/experiments/" in events  # the links, clean
    compute_logs = [p for p in (tmp_path / "dagster_home" / "storage").rglob("*") if p.is_file()]
    assert compute_logs and not [p for p in compute_logs if secret.encode() in p.read_bytes()]
    mlflow_run = only_run(server["url"])
    assert secret not in json.dumps([mlflow_run.data.params, mlflow_run.data.tags])
    for version in MlflowClient(server["url"]).search_model_versions():
        assert secret not in json.dumps(version.tags) + str(version.description)
    outcome.note(
        f"searched stdout/stderr, {len(events):,} bytes of events, {len(compute_logs)} compute logs, MLflow tags and versions: no password"
    )


def test_five_first_runs_at_once_on_a_new_instance(tmp_path, tracking_uri, outcome):
    """Five `dagster job execute` at once on a brand-new DAGSTER_HOME made by scripts/env.sh: all succeed, the instance stays usable"""
    home = tmp_path / "new_home"
    dagster = shlex.quote(str(BIN / "dagster"))
    runs = " ".join(f"{dagster} job execute -m iris_assets -j iris_pipeline > run{i}.log 2>&1 &" for i in range(5))
    # (In one group: `a && b & c` would background `a && b` and run `c` without DAGSTER_HOME.) Paths quoted:
    # a clone's folder may hold a space.
    root, home_path, here = (shlex.quote(str(path)) for path in (REPO_ROOT, home, tmp_path))
    script = f"cd {root} && export DAGSTER_HOME={home_path} && source scripts/env.sh && cd {here} && {{ {runs} wait; }}"
    subprocess.run(["/bin/bash", "-c", script], env={**os.environ, **QUIET_ENV}, timeout=900, check=True)
    logs = {i: (tmp_path / f"run{i}.log").read_text(errors="replace") for i in range(5)}
    assert all(reports_success(log) for log in logs.values()), {i: log[-2000:] for i, log in logs.items()}
    listed = subprocess.run(
        [str(BIN / "dagster"), "run", "list"],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0 and listed.stdout.count("Run: ") == 5, listed.stderr[-2000:]
    outcome.note("5 runs FINISHED; `dagster run list` shows 5 runs afterwards")


@pytest.mark.parametrize(
    ("value", "allowed"),
    [("abc", "a number from 0.0 to 1.0"), ("2", "a number from 0.0 to 1.0"), ("nan", "a number from 0.0 to 1.0")],
)
def test_a_bad_setting_fails_when_definitions_load(monkeypatch, value, allowed, outcome):
    """A bad environment setting (IRIS_MIN_ACCURACY=abc, 2, nan) fails loading the definitions, naming it"""
    monkeypatch.setenv("IRIS_MIN_ACCURACY", value)
    result = run_cli("dagster", "definitions", "validate", "-m", "iris_assets", expect_ok=False, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"$IRIS_MIN_ACCURACY={value!r} is not allowed: expected {allowed}" in output, output[-3000:]
    outcome.note(f"IRIS_MIN_ACCURACY={value}: refused when definitions load")


def test_iris_predict_memory_is_bounded_by_its_input_limit(tmp_path, outcome):
    """iris-predict given a 256 MiB line: a one-line error, exit 2, memory bounded by its 16 MiB input limit"""
    line = tmp_path / "huge.csv"
    with open(line, "wb") as file:
        file.truncate(256 * 1024 * 1024)  # a sparse file: 256 MiB of NUL bytes on one line
    probe = (
        "import resource, subprocess, sys; "
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, repr(p.stderr))"
    )
    result = subprocess.run(
        [str(BIN / "python"), "-c", probe, str(BIN / "iris-predict"), str(line)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **QUIET_ENV},
    )
    code, peak_kib, stderr = result.stdout.strip().split(" ", 2)
    assert code == "2" and "input is larger than 16,777,216 bytes" in stderr and "Traceback" not in stderr, result
    peak_mib = int(peak_kib) / 1024
    assert peak_mib < 400, peak_mib  # the interpreter and its imports, plus at most the 16 MiB read
    outcome.note(f"exit 2, one line; peak RSS {peak_mib:.0f} MiB for a 256 MiB input")


TICKS = """
import json, sys
import dagster as dg
from iris_assets.automation import landing
from iris_assets.automation.sensors import new_iris_data

reads = []
original = landing.read_bounded
landing.read_bounded = lambda path, *a, **k: reads.append(path) or original(path, *a, **k)
cursor, ticks = None, []
with dg.DagsterInstance.ephemeral() as instance:
    for _ in range(3):
        reads.clear()
        result = new_iris_data(dg.build_sensor_context(instance=instance, cursor=cursor))
        cursor = result.cursor
        ticks.append({
            "runs": [r.tags for r in result.run_requests],
            "run_configs": [r.run_config for r in result.run_requests],
            "skip": result.skip_reason.skip_message if result.skip_reason else None,
            "reads": [p.rsplit("/", 1)[1] for p in reads],
        })
# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec.
peak_kib = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"ticks": ticks, "peak_mib": peak_kib / 1024}))
"""


def test_the_landing_folder_is_untrusted_input(tmp_path, instance, tracking_uri, monkeypatch, outcome):
    """Landing folder holding a FIFO, a link to a file outside it, a 2 GB sparse file and a valid file: ticks stay fast and small, nothing outside is read or echoed"""
    from iris_assets.data.schema import CSV_COLUMNS, load_bundled_iris

    secret = "db_password=hunter2-landing"
    landing = tmp_path / "landing"
    landing.mkdir()
    table = load_bundled_iris().frame[CSV_COLUMNS]
    outside = tmp_path / "outside.csv"
    outside.write_text(secret + "\n" + table.to_csv(index=False))
    (landing / "link.csv").symlink_to(outside)
    os.mkfifo(landing / "pipe.csv")
    with open(landing / "huge.csv", "wb") as file:
        file.truncate(2 * 1024**3)
    table.iloc[::2].to_csv(landing / "good.csv", index=False)
    monkeypatch.setenv("IRIS_LANDING_DIR", str(landing))

    result = subprocess.run(
        [str(BIN / "python"), "-c", TICKS], capture_output=True, text=True, timeout=120, env={**os.environ, **QUIET_ENV}
    )
    assert result.returncode == 0, result.stderr[-3000:]  # no tick hung on the FIFO (timeout above)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    first, second, third = report["ticks"]
    assert [tags["iris/landing_file"].rsplit("/", 1)[1] for tags in first["runs"]] == ["good.csv"]
    assert first["reads"] == ["good.csv"]  # never the link, the FIFO or the 2 GB file
    reason = second["skip"]
    assert "link.csv: is a symbolic link" in reason and "pipe.csv: is a FIFO" in reason, reason
    assert "huge.csv: is 2,147,483,648 bytes" in reason, reason
    assert secret not in json.dumps(report) and "hunter2" not in result.stderr
    assert second["reads"] == [] and third["reads"] == [] and "no new CSV file" in third["skip"]
    assert report["peak_mib"] < 400, report["peak_mib"]

    # The run trains on exactly the accepted file: changed since, it is refused.
    (landing / "good.csv").write_text(table.iloc[1::2].to_csv(index=False))
    from iris_harness.runs import iris_pipeline

    run = dg.execute_job(
        dg.reconstructable(iris_pipeline), instance=instance, run_config=first["run_configs"][0], raise_on_error=False
    )
    assert not run.success
    (failure,) = run.get_step_failure_events()
    assert "its content changed since it was accepted" in failure.step_failure_data.error.to_string()
    outcome.note(
        f"3 ticks: 1 run (good.csv), the link, FIFO and 2 GB file reported without reading them, nothing re-read; "
        f"peak RSS {report['peak_mib']:.0f} MiB; a file changed after acceptance is refused by its run"
    )
