"""Services that stop under runs on the scale-out topology (reliability/scaleout_checks.py: its own,
started with the default outage limit, $IRIS_OUTAGE_LIMIT_SECONDS = 60 s, and deploy/dagster.yaml's
one automatic run retry).

A blip within the limit must cost nothing: the run ends SUCCESS with no one acting, bound to one
FINISHED MLflow run, each step's work recorded once — the broker and object store together,
PostgreSQL (twice in one run on the Celery workers; on the multiprocess executor), the MLflow
server. Past the limit the failure names the service: the broker (its automatic retry waits for it,
a re-execution of that retry continues the chain's first MLflow run, a step message handed out
again for the failed run is dropped), PostgreSQL, the object store behind the MLflow server. A step
still running when its run fails is stopped before the run's retry writes.
"""

import os
import subprocess
import sys
import time

import dagster as dg
import pytest
import yaml

from iris_assets.execution.outages import broker_address
from iris_assets.settings import DEFAULT_OUTAGE_LIMIT_SECONDS
from iris_assets_tests.reliability.scaleout_checks import (
    CELERY,
    LOCAL_EXECUTORS,
    SLOW_MODEL,
    STORED_ASSETS,
    assert_recorded_once,
    count,
    errors_in,
    final_status,
    has_stored_model,
    mlflow_run_of,
    open_instance,
    outage,
    start_topology,
    stored_values,
    successes_by_step,
    why_failed,
)
from iris_harness.environment import BIN, QUIET_ENV
from iris_harness.graphql_client import (
    RUN_EVENTS,
    graphql,
    launch_job,
    reexecute_from_failure,
    wait_for_run,
)
from iris_harness.processes import wait_until
from iris_harness.runs import wait_for_step_start
from iris_harness.scaleout import S3_SECRET

pytestmark = pytest.mark.servers

scaleout = pytest.fixture(scope="module", name="scaleout")(start_topology)
instance = pytest.fixture(scope="module", name="instance")(open_instance)


def test_broker_and_object_store_stopped_mid_step_within_the_limit(scaleout, instance, outcome):
    """Broker and object store stopped together mid-step for 45 s: SUCCESS unattended, one FINISHED MLflow run, each step once, every stored value intact"""
    # Together: each retry path (publishing, results in PostgreSQL, stored values, workers reconnecting) is
    # then taken in one run; they ran apart, and with a 10 s case too, until the suite needed the minutes
    # (RELIABILITY.md keeps those measurements).
    run_id = launch_job(scaleout.topology.web_port, run_config={**CELERY, **SLOW_MODEL})
    wait_for_step_start(instance, "model", run_id, timeout=300)
    time.sleep(1)

    def stop_both() -> None:
        scaleout.broker.stop()
        scaleout.store.stop()

    def start_both() -> None:
        scaleout.store.start()
        scaleout.broker.start()

    away = outage(stop_both, start_both, 45)
    assert final_status(scaleout, instance, run_id, timeout=900) == "SUCCESS", why_failed(scaleout, instance, run_id)
    assert [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/root_run_id": run_id}))] == []
    successes = successes_by_step(instance, run_id)
    assert successes == {s: 1 for s in [*STORED_ASSETS, "registered_model"]}, successes
    assert_recorded_once(scaleout, instance, run_id, mlflow_run_of(scaleout, run_id), [run_id])
    stored = stored_values(scaleout, run_id)
    assert stored["model"][2].n_estimators == 2000 and len(stored["splits"][2].X_test) == 30
    outcome.note(
        f"broker and object store away {away:.0f} s (stopped 45 s, then their restarts): SUCCESS without a retry, "
        "one FINISHED MLflow run, each step once, one model and version, values intact"
    )


def _postgres_outages_mid_run(scaleout, instance, run_id: str, seconds: list[int]) -> list[float]:
    """Stop PostgreSQL (Dagster's storage, Celery's results, the step leases, MLflow's backend store) for
    each of ``seconds`` in turn: the first a second into `model`, the next once a later step has started."""
    server = scaleout.postgres.tcp_server
    assert server is not None
    away, later_steps = [], iter(["metrics", "registered_model"])
    wait_for_step_start(instance, "model", run_id, timeout=300)
    time.sleep(1)
    for length in seconds:
        away.append(outage(server.stop_server, server.start, length))
        if len(away) < len(seconds):
            wait_for_step_start(instance, next(later_steps), run_id, timeout=300)
    return away


def _assert_everything_rode_it_out(scaleout, instance, run_id: str, outages_ended: float) -> None:
    """After PostgreSQL came back: the webserver answers at once (its pooled connections were checked),
    the daemon's loops beat again, the run's log holds each step's start and success once."""
    graphql(scaleout.topology.web_port, RUN_EVENTS, {"id": run_id})  # raises on an error answer
    wait_until(
        lambda: all(beat.timestamp > outages_ended for beat in instance.get_daemon_heartbeats().values()),
        120,
        "every daemon to beat after the outage",
    )
    assert scaleout.topology.services["daemon"].process.poll() is None
    starts = count(e.dagster_event.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START))
    assert starts == {s: 1 for s in [*STORED_ASSETS, "registered_model"]}, starts


def test_postgres_stopped_mid_step_within_the_limit(scaleout, instance, outcome):
    """PostgreSQL (Dagster's storage, Celery's results, the step leases, MLflow's backend store) stopped for 10 s mid-step, then for 45 s during a later step, on the Celery workers: SUCCESS unattended, one FINISHED MLflow run, each step once, nothing missing from the run's log; webserver and daemon answer afterwards"""
    run_id = launch_job(scaleout.topology.web_port, run_config={**CELERY, **SLOW_MODEL})
    away = _postgres_outages_mid_run(scaleout, instance, run_id, [10, 45])
    ended = time.time()
    assert final_status(scaleout, instance, run_id, timeout=900) == "SUCCESS", why_failed(scaleout, instance, run_id)
    _assert_everything_rode_it_out(scaleout, instance, run_id, ended)
    assert [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/root_run_id": run_id}))] == []
    successes = successes_by_step(instance, run_id)
    assert successes == {s: 1 for s in [*STORED_ASSETS, "registered_model"]}, successes
    assert_recorded_once(scaleout, instance, run_id, mlflow_run_of(scaleout, run_id), [run_id])
    outcome.note(
        f"PostgreSQL away {away[0]:.0f} s, then {away[1]:.0f} s: SUCCESS without a retry, one FINISHED MLflow run, "
        "each step started and succeeded once; the webserver answered at once, every daemon beat again"
    )


def test_postgres_stopped_mid_step_on_the_multiprocess_executor(scaleout, instance, outcome):
    """PostgreSQL stopped for 45 s mid-step of a run on the multiprocess executor (PostgreSQL storage): SUCCESS unattended, one FINISHED MLflow run, each step once"""
    run_config = {**SLOW_MODEL, "execution": {"config": {"multiprocess": {}}}}
    run_id = launch_job(scaleout.topology.web_port, run_config=run_config)
    away = _postgres_outages_mid_run(scaleout, instance, run_id, [45])
    ended = time.time()
    assert final_status(scaleout, instance, run_id, timeout=900) == "SUCCESS", why_failed(scaleout, instance, run_id)
    _assert_everything_rode_it_out(scaleout, instance, run_id, ended)
    messages = [entry.message or "" for entry in instance.all_logs(run_id)]
    assert any(m.startswith(LOCAL_EXECUTORS["multiprocess"]) for m in messages)
    assert [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/root_run_id": run_id}))] == []
    assert_recorded_once(scaleout, instance, run_id, mlflow_run_of(scaleout, run_id), [run_id])
    outcome.note(
        f"multiprocess: PostgreSQL away {away[0]:.0f} s: SUCCESS without a retry, one FINISHED MLflow run, each step once"
    )


def test_postgres_past_a_short_limit_from_a_terminal(scaleout, instance, tmp_path, outcome):
    """PostgreSQL stopped for 25 s mid-step of a terminal run (`dagster job execute`, in-process) on a short limit (5 s): the run fails naming PostgreSQL (recorded once it answers again, never its password), its MLflow run ends FAILED; `iris-runs reexecute` finishes the same MLflow run"""
    config = tmp_path / "slow.yaml"
    config.write_text(yaml.safe_dump(SLOW_MODEL))
    env = {**os.environ, **QUIET_ENV, **scaleout.topology.env, "IRIS_OUTAGE_LIMIT_SECONDS": str(SHORT_LIMIT)}
    env.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)  # derived from the limit
    command = [str(BIN / "dagster"), "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline", "-c", str(config)]
    command += ["--tags", '{"dagster/max_retries": "0"}']  # re-executed by hand below, not by the daemon
    before = {run.run_id for run in instance.get_runs()}
    said = tmp_path / "terminal.log"
    terminal = subprocess.Popen(command, cwd=scaleout.folder, env=env, stdout=said.open("w"), stderr=subprocess.STDOUT)
    try:
        run_id = wait_until(
            lambda: next((r.run_id for r in instance.get_runs(limit=5) if r.run_id not in before), None),
            120,
            "the terminal's run",
        )
        wait_for_step_start(instance, "model", run_id, timeout=300)
        mlflow_run = mlflow_run_of(scaleout, run_id)
        server = scaleout.postgres.tcp_server
        assert server is not None
        away = outage(server.stop_server, server.start, 25)
        terminal.wait(timeout=600)
    finally:
        terminal.kill()
    output = said.read_text()
    assert terminal.returncode != 0, output[-3000:]
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    named = f"PostgreSQL at 127.0.0.1:{server.port}/"
    errors = errors_in(instance, run_id)
    assert any(named in error.message and "did not answer for" in error.message for error in errors), [
        e.message for e in errors
    ]
    assert named in output and scaleout.postgres.password not in output
    assert not any(scaleout.postgres.password in error.to_string() for error in errors)
    client = scaleout.topology.mlflow_client()
    wait_until(
        lambda: client.get_run(mlflow_run.info.run_id).info.status == "FAILED", 120, "the MLflow run to end FAILED"
    )
    # A terminal's run is re-executed from a terminal (the webserver's workspace does not hold its origin).
    env.pop("IRIS_OUTAGE_LIMIT_SECONDS")
    again = subprocess.run(
        [str(BIN / "iris-runs"), "reexecute", run_id], cwd=scaleout.folder, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    (resumed,) = [r.run_id for r in instance.get_runs(limit=10) if r.parent_run_id == run_id]
    assert instance.get_run_by_id(resumed).status == dg.DagsterRunStatus.SUCCESS
    assert_recorded_once(scaleout, instance, run_id, mlflow_run, [run_id, resumed])
    outcome.note(
        f"PostgreSQL away {away:.0f} s on a {SHORT_LIMIT} s limit: the run FAILED naming PostgreSQL (no password), "
        "MLflow run FAILED; `iris-runs reexecute` SUCCESS, the same MLflow run FINISHED once"
    )


# A client of the tracking server, on a short outage limit, uploading one artifact through the server's
# proxy once the test has stopped the object store behind it; prints how long the upload took and its error.
_UPLOAD_THROUGH_THE_PROXY = """
import sys, time
from iris_assets.tracking.store import mlflow_client
client = mlflow_client(sys.argv[1], source="the test")
run = client.create_run(client.create_experiment(sys.argv[2]))
print("ready", flush=True)
sys.stdin.readline()
started = time.monotonic()
try:
    client.log_text(run.info.run_id, "an artifact", "probe.txt")
    print("uploaded", flush=True)
except Exception as error:
    print(f"{time.monotonic() - started:.1f}", type(error).__name__, error, flush=True)
client.set_terminated(run.info.run_id, "FAILED")
"""
SHORT_LIMIT = 5


def test_object_store_past_a_short_limit_behind_the_mlflow_server(scaleout, outcome):
    """Object store stopped while an artifact goes through the MLflow server's proxy, past a short limit (5 s): the upload fails naming the object store behind the server, not the server, within the limit plus a bounded margin"""
    env = {**scaleout.topology.env, "IRIS_OUTAGE_LIMIT_SECONDS": str(SHORT_LIMIT)}
    env.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)  # derived from the limit
    client = subprocess.Popen(
        [sys.executable, "-c", _UPLOAD_THROUGH_THE_PROXY, scaleout.topology.mlflow_url, "object-store-past-the-limit"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert client.stdout.readline().strip() == "ready"
        scaleout.store.stop()
        try:
            client.stdin.write("go\n")
            client.stdin.flush()
            answer = client.stdout.readline().strip()
        finally:
            scaleout.store.start()
        assert client.wait(timeout=120) == 0
    finally:
        client.kill()
    seconds, kind, message = answer.split(" ", 2)
    assert kind == "MlflowBindingError", answer
    assert message.startswith(f"The object store behind MLflow tracking server '{scaleout.topology.mlflow_url}'"), (
        message
    )
    assert "is unreachable" not in message and S3_SECRET not in message
    outcome.note(
        f"upload failed after {float(seconds):.1f} s (limit {SHORT_LIMIT} s) naming the object store behind the server"
    )
    assert float(seconds) < 2 * SHORT_LIMIT + 5, answer  # retries span at most twice the limit, each 500 quick


def test_broker_down_past_the_limit(scaleout, instance, outcome):
    """Broker down past the limit mid-run: the run fails naming the broker; its automatic retry waits the limit for the broker and fails before any step; re-execution from failure of that retry finishes the first MLflow run; the step redelivered for the failed run is dropped"""
    run_id = launch_job(scaleout.topology.web_port, run_config={**CELERY, **SLOW_MODEL})
    wait_for_step_start(instance, "model", run_id, timeout=300)
    mlflow_run = mlflow_run_of(scaleout, run_id)
    named = f"The Celery broker at {broker_address(scaleout.broker.url)} did not answer"
    stopped = time.monotonic()
    scaleout.broker.stop()
    try:
        assert wait_for_run(scaleout.topology.web_port, run_id, timeout=600) == "FAILURE"
        failed_after = time.monotonic() - stopped
        model_value = (
            stored_values(scaleout, run_id, ["model"])["model"][:2] if has_stored_model(scaleout, run_id) else None
        )
        retry = wait_until(
            lambda: instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id})),
            120,
            "the automatic retry",
        )[0]
        assert wait_for_run(scaleout.topology.web_port, retry.run_id, timeout=600) == "FAILURE"
    finally:
        scaleout.broker.start()
    for failed in (run_id, retry.run_id):
        errors = errors_in(instance, failed)
        assert any(named in error.message for error in errors), [error.message for error in errors]
        assert not any("guest:guest" in error.to_string() for error in errors)  # the broker URL's credentials
    retry_log = [entry.message or "" for entry in instance.all_logs(retry.run_id)]
    assert any(
        line.startswith(f"Waiting up to {DEFAULT_OUTAGE_LIMIT_SECONDS} s") and "Celery broker" in line
        for line in retry_log
    ), retry_log
    assert not instance.all_logs(retry.run_id, of_type=dg.DagsterEventType.STEP_START)  # failed before any step
    resumed = reexecute_from_failure(scaleout.topology.web_port, retry.run_id)  # the UI's call
    assert final_status(scaleout, instance, resumed, timeout=900) == "SUCCESS", why_failed(scaleout, instance, resumed)
    assert_recorded_once(scaleout, instance, run_id, mlflow_run, [run_id, resumed])
    # The model step had ended while the broker was away: its message, never acknowledged,
    # came back with the broker and was dropped (the run had failed), writing nothing.
    dropped = f"Dropped step 'model' of run {run_id}: the run is FAILURE."
    wait_until(
        lambda: any(dropped in w.log() for w in scaleout.workers.values()), 120, "a worker to drop the redelivered step"
    )
    assert model_value is not None and stored_values(scaleout, run_id, ["model"])["model"][:2] == model_value
    outcome.note(
        f"run FAILED {failed_after:.0f} s after the broker stopped, naming it; its automatic retry waited "
        f"{DEFAULT_OUTAGE_LIMIT_SECONDS} s, failed before any step naming it; re-execution from failure of the retry SUCCESS, the first MLflow run "
        "FINISHED once; redelivered model step dropped, nothing rewritten"
    )
