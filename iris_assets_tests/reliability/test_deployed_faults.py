"""The deployment, its faults, concurrency and secrets: the deployment topology (docker-compose.yml's
services as local processes: PostgreSQL, MLflow server, code server, webserver, daemon).

Every case launches through the webserver's GraphQL API as the UI does, breaks
something real, and then checks what was kept: the Dagster run's message, the MLflow
run's status, the artifacts of the steps that had completed, and that a re-execution
from failure (or the automatic run retry of deploy/dagster.yaml) completes the *same*
MLflow run with every artifact exactly once.
"""

import json
import os
import signal
import time
import urllib.request

import dagster as dg
import pytest

from iris_assets.settings import DEFAULT_EXPERIMENT
from iris_assets.tracking.tags import DAGSTER_RUN_ID_TAG, DAGSTER_RUN_IDS_TAG
from iris_assets.tuning.launch import REPOSITORY_SELECTOR
from iris_assets_tests.mlflow_checks import EXPECTED_ARTIFACTS, artifact_paths, assert_complete_iris_run
from iris_assets_tests.reliability.conftest import repeat
from iris_harness.graphql_client import (
    graphql,
    launch_job,
    materialize_all,
    reexecute_from_failure,
    terminate,
    wait_for_code_location,
    wait_for_run,
)
from iris_harness.processes import wait_until
from iris_harness.runs import run_worker_pid, wait_for_step_start
from iris_harness.topology import Postgres, Topology

pytestmark = pytest.mark.servers

# Credentials given to every service; test_no_secret_in_any_store looks for them everywhere.
SECRETS = {
    "MLFLOW_TRACKING_USERNAME": "sentinel-user-7f3a",
    "MLFLOW_TRACKING_PASSWORD": "sentinel-password-9c1e",
    "MLFLOW_TRACKING_TOKEN": "sentinel-token-4b8d",
}
DB_PASSWORD = "sentinel-db-password-2e6f"
# A password in the tracking URI's user-info, as a user may write it.
URI_PASSWORD = "sentinel-uri-password-8b3d"

# A `model` step long enough (~5 s here) for a fault to land in it: with the forest on
# every core, 300 trees took ~3 s and a cancel once arrived after the run had succeeded.
FAULT_TREES = 800
FAULT_CONFIG = {"ops": {"model": {"config": {"n_estimators": FAULT_TREES, "n_jobs": 1}}}}
NO_AUTOMATIC_RETRY = {"dagster/max_retries": "0"}

# What each step leaves in the MLflow run (besides params, metrics and dataset inputs).
STEP_ARTIFACTS = {
    "model": {"feature_importance.json", "feature_importance.png"},
    "metrics": {"confusion_matrix.json", "confusion_matrix.png", "classification_report.txt"},
    "onnx_model": {"onnx_model/iris_random_forest.onnx"},
}


@pytest.fixture(scope="module")
def topology(tmp_path_factory):
    folder = tmp_path_factory.mktemp("topology")
    postgres = Postgres(folder, password=DB_PASSWORD)
    topology = Topology(
        folder,
        postgres,
        env=SECRETS,
        instance_yaml={"concurrency": {"runs": {"max_concurrent_runs": 4}, "pools": {"default_limit": 1}}},
    )
    topology.env["MLFLOW_TRACKING_URI"] = topology.mlflow_url.replace("http://", f"http://iris:{URI_PASSWORD}@")
    try:
        yield topology.start()
    finally:
        topology.stop()
        postgres.close()


@pytest.fixture(scope="module")
def instance(topology):
    with topology.instance() as instance:
        yield instance


# -- helpers ------------------------------------------------------------------------------------


def _failure_text(instance, run_id: str) -> str:
    """Every error message the run's event log holds (run and step failures, engine errors)."""
    texts = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type in (
            dg.DagsterEventType.RUN_FAILURE,
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.ENGINE_EVENT,
        ):
            texts.append(entry.message or "")
            data = event.event_specific_data
            error = getattr(data, "error", None)
            if error is not None:
                texts.append(error.to_string())
    return "\n".join(texts)


def _mlflow_run_of(topology, dagster_run_id: str):
    client = topology.mlflow_client()
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.{DAGSTER_RUN_ID_TAG} = '{dagster_run_id}'"
    )
    assert len(runs) <= 1, [r.info.run_id for r in runs]
    return runs[0] if runs else None


def _automatic_retry(instance, run_id: str):
    """The run the daemon launched to retry ``run_id``, once it exists."""
    return wait_until(
        lambda: (
            [r for r in instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run_id}))]
            or [r for r in instance.get_runs() if r.parent_run_id == run_id]
        ),
        # A hang guard, not a timing: under CI's load (three suites on 2 cores) the daemon's retry loop
        # once took past 120 s to create the retry of a run failed by the restarted code server.
        timeout=300,
        what="the automatic retry",
        interval=1,
    )[0]


def _completed_steps(instance, run_id: str) -> set[str]:
    return {e.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}


def _assert_completed_steps_kept(topology, instance, dagster_run_id: str, mlflow_run) -> list[str]:
    kept = set(artifact_paths(topology.mlflow_url, mlflow_run.info.run_id))
    completed = _completed_steps(instance, dagster_run_id)
    for step, artifacts in STEP_ARTIFACTS.items():
        if step in completed:
            assert artifacts <= kept, (step, kept)
    if "splits" in completed:
        assert mlflow_run.data.params["test_size"] == "0.2"
    return sorted(completed)


def _assert_finished_once(topology, mlflow_run_id: str, dagster_run_ids: list[str], n_estimators: int = FAULT_TREES):
    run = topology.mlflow_client().get_run(mlflow_run_id)
    assert run.data.tags[DAGSTER_RUN_IDS_TAG].split() == dagster_run_ids
    assert_complete_iris_run(topology.mlflow_url, run, n_estimators=n_estimators)
    return run


def _reexecute_and_assert_same_run(topology, instance, run_id: str, mlflow_run_id: str) -> list[str]:
    """Check what the interrupted run kept, re-execute it from failure through the
    webserver, and check the re-execution finished the same MLflow run; the steps
    the interrupted run had completed."""
    completed = _assert_completed_steps_kept(
        topology, instance, run_id, topology.mlflow_client().get_run(mlflow_run_id)
    )
    child = reexecute_from_failure(topology.web_port, run_id)
    assert wait_for_run(topology.web_port, child) == "SUCCESS", topology.logs()
    _assert_finished_once(topology, mlflow_run_id, [run_id, child])
    return completed


def _wait_for_mlflow_status(topology, mlflow_run_id: str, statuses: set[str], timeout: float = 120) -> str:
    client = topology.mlflow_client()
    return wait_until(
        lambda: (s := client.get_run(mlflow_run_id).info.status) in statuses and s,
        timeout=timeout,
        what=f"MLflow run {mlflow_run_id} to end {statuses}",
        interval=1,
    )


# -- the deployment as it is meant to run ---------------------------------------------------------


def test_materialize_all_in_the_deployment(topology, instance, outcome):
    """Baseline: "Materialize all" through the webserver of the compose topology: one FINISHED run, artifacts served"""
    run_id, status = materialize_all(topology.web_port, timeout=400)
    assert status == "SUCCESS", topology.logs()
    run = _mlflow_run_of(topology, run_id)
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the MLflow server
    assert sorted(artifact_paths(topology.mlflow_url, run.info.run_id)) == sorted(EXPECTED_ARTIFACTS)
    onnx = urllib.request.urlopen(
        f"{topology.mlflow_url}/get-artifact?path=onnx_model/iris_random_forest.onnx&run_uuid={run.info.run_id}",
        timeout=30,
    ).read()
    import onnx as onnx_lib

    assert onnx_lib.load_from_string(onnx).producer_name == "skl2onnx"
    # Dagster's stores are the PostgreSQL database, not sqlite files in DAGSTER_HOME.
    assert topology.postgres.query("dagster", "SELECT status FROM runs WHERE run_id = %s", (run_id,)) == [("SUCCESS",)]
    ((events,),) = topology.postgres.query("dagster", "SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))
    assert events > 10
    assert not (topology.home / "history").exists() and not (topology.home / "schedules").exists()
    outcome.note(
        "SUCCESS; one MLflow run FINISHED with every artifact, served by the MLflow server; Dagster state in PostgreSQL"
    )


# -- faults -------------------------------------------------------------------------------------


@repeat()
def test_run_worker_killed_then_retried_automatically(topology, instance, outcome, repetition):
    """Run worker SIGKILLed mid-step; the configured automatic run retry completes the same MLflow run"""
    run_id = launch_job(topology.web_port, run_config=FAULT_CONFIG)
    wait_for_step_start(instance, "model", run_id)
    os.kill(run_worker_pid(instance, run_id), signal.SIGKILL)
    assert wait_for_run(topology.web_port, run_id) == "FAILURE"
    assert "SIGKILL" in _failure_text(instance, run_id) or "signal 9" in _failure_text(instance, run_id)

    retry = _automatic_retry(instance, run_id)
    assert retry.tags.get("dagster/is_resume_retry") == "true"
    assert wait_for_run(topology.web_port, retry.run_id) == "SUCCESS", topology.logs()
    mlflow_run = _mlflow_run_of(topology, run_id)
    _assert_finished_once(topology, mlflow_run.info.run_id, [run_id, retry.run_id])
    outcome.note(
        "Dagster run FAILURE naming the signal; automatic retry SUCCESS; same MLflow run FINISHED, every artifact once"
    )


@repeat()
def test_run_worker_killed_then_reexecuted_from_failure(topology, instance, outcome, repetition):
    """Run worker SIGKILLed mid-step, no automatic retry: the MLflow run ends FAILED, re-execution from failure finishes it"""
    run_id = launch_job(topology.web_port, run_config=FAULT_CONFIG, tags=NO_AUTOMATIC_RETRY)
    wait_for_step_start(instance, "model", run_id)
    os.kill(run_worker_pid(instance, run_id), signal.SIGKILL)
    assert wait_for_run(topology.web_port, run_id) == "FAILURE"
    mlflow_run = _mlflow_run_of(topology, run_id)
    # Nothing in the dead worker could end it: the daemon's run-failure sensor does.
    assert _wait_for_mlflow_status(topology, mlflow_run.info.run_id, {"FAILED"}) == "FAILED"
    completed = _reexecute_and_assert_same_run(topology, instance, run_id, mlflow_run.info.run_id)
    outcome.note(
        f"MLflow run FAILED (sensor) keeping {', '.join(completed) or 'no step'}; re-execution: same run FINISHED, every artifact once"
    )


@repeat()
def test_run_canceled_through_the_webserver(topology, instance, outcome, repetition):
    """Run canceled from the UI mid-step: the MLflow run ends KILLED, re-execution from failure finishes it"""
    run_id = launch_job(topology.web_port, run_config=FAULT_CONFIG)
    wait_for_step_start(instance, "model", run_id)
    terminate(topology.web_port, run_id)
    assert wait_for_run(topology.web_port, run_id) == "CANCELED"
    mlflow_run = _mlflow_run_of(topology, run_id)
    assert _wait_for_mlflow_status(topology, mlflow_run.info.run_id, {"KILLED"}) == "KILLED"
    completed = _reexecute_and_assert_same_run(topology, instance, run_id, mlflow_run.info.run_id)
    outcome.note(
        f"Dagster run CANCELED; MLflow run KILLED keeping {', '.join(completed) or 'no step'}; re-execution: same run FINISHED"
    )


@repeat()
def test_mlflow_server_down_when_the_run_starts(topology, instance, outcome, repetition):
    """MLflow server down when the run starts: the first step fails naming the server; nothing half-written"""
    topology.stop_mlflow()
    try:
        started = time.monotonic()
        run_id = launch_job(topology.web_port, tags=NO_AUTOMATIC_RETRY)
        assert wait_for_run(topology.web_port, run_id) == "FAILURE"
        seconds = time.monotonic() - started
    finally:
        topology.start_mlflow()
    text = _failure_text(instance, run_id)
    assert f"MLflow tracking server '{topology.mlflow_url}'" in text and "is unreachable" in text, text[-3000:]
    assert _mlflow_run_of(topology, run_id) is None  # no run was created, so none is left RUNNING

    child = reexecute_from_failure(topology.web_port, run_id)
    assert wait_for_run(topology.web_port, child) == "SUCCESS", topology.logs()
    mlflow_run = _mlflow_run_of(topology, child)
    _assert_finished_once(topology, mlflow_run.info.run_id, [child], n_estimators=100)
    outcome.note(
        f"failed in {seconds:.0f} s naming the unreachable server; no MLflow run created; re-execution FINISHED"
    )


@repeat()
def test_mlflow_server_stopped_mid_run_then_restarted(topology, instance, outcome, repetition):
    """MLflow server stopped mid-step, restarted: the run fails naming it (or rides it out); the same MLflow run finishes"""
    run_id = launch_job(topology.web_port, run_config=FAULT_CONFIG, tags=NO_AUTOMATIC_RETRY)
    wait_for_step_start(instance, "model", run_id)
    mlflow_run = _mlflow_run_of(topology, run_id)
    topology.stop_mlflow()
    try:
        status = wait_for_run(topology.web_port, run_id)
    finally:
        topology.start_mlflow()
    if status == "FAILURE":
        text = _failure_text(instance, run_id)
        assert topology.mlflow_url in text, text[-3000:]
        # The run-failure sensor fired while the server was down; the daemon's sweep
        # (close_orphaned_mlflow_runs) ends it FAILED once the server answers again.
        _wait_for_mlflow_status(topology, mlflow_run.info.run_id, {"FAILED"}, timeout=240)
        child = reexecute_from_failure(topology.web_port, run_id)
        assert wait_for_run(topology.web_port, child) == "SUCCESS", topology.logs()
        _assert_finished_once(topology, mlflow_run.info.run_id, [run_id, child])
        outcome.note(
            "run FAILED naming the server; MLflow run FAILED after restart; re-execution: same run FINISHED, every artifact once"
        )
    else:
        assert status == "SUCCESS"
        _assert_finished_once(topology, mlflow_run.info.run_id, [run_id])
        outcome.note("outage shorter than the retry budget: run SUCCESS, MLflow run FINISHED")


@repeat()
def test_postgres_restarted_mid_run(topology, instance, outcome, repetition):
    """PostgreSQL (Dagster's and MLflow's storage) restarted mid-step (in-process executor): the run succeeds unattended, one MLflow run, and the webserver answers at once"""
    run_id = launch_job(topology.web_port, run_config=FAULT_CONFIG)
    wait_for_step_start(instance, "model", run_id)
    topology.postgres.restart()
    errors = _webserver_errors_until_recovered(topology, run_id)
    assert errors == 0  # deploy/dagster.yaml's IrisInstance checks a pooled connection before use
    assert wait_for_run(topology.web_port, run_id) == "SUCCESS", topology.logs()
    assert not [r for r in instance.get_runs() if r.parent_run_id == run_id]
    mlflow_run = _mlflow_run_of(topology, run_id)
    _assert_finished_once(topology, mlflow_run.info.run_id, [run_id])
    outcome.note(
        "run SUCCESS without a retry; one MLflow run FINISHED, every artifact once; the webserver answered at once"
    )


def test_webserver_and_daemon_stopped_mid_run(topology, instance, outcome):
    """Webserver and daemon stopped mid-step (a redeploy of both), started again 20 s later: the run goes on without them, SUCCESS unattended, one FINISHED MLflow run; both answer again"""
    run_id = launch_job(topology.web_port, run_config=FAULT_CONFIG)
    wait_for_step_start(instance, "model", run_id)
    stopped = time.time()
    topology.stop_service("webserver")
    topology.stop_service("daemon")
    try:
        time.sleep(20)
        status = instance.get_run_by_id(run_id).status
    finally:
        topology.start_webserver()
        topology.start_daemon()
    assert wait_for_run(topology.web_port, run_id) == "SUCCESS", topology.logs()
    _assert_finished_once(topology, _mlflow_run_of(topology, run_id).info.run_id, [run_id])
    wait_until(
        lambda: (beats := instance.get_daemon_heartbeats()) and all(b.timestamp > stopped for b in beats.values()),
        timeout=120,
        what="every daemon to beat again",
        interval=1,
    )
    outcome.note(f"run {status.value} while both were away; SUCCESS, one MLflow run FINISHED; every daemon beat again")


# What the daemon logs on a run it put back in the queue (deploy/dagster.yaml's run_coordinator).
REQUEUED = "Run dequeue failed to reach the user code server, re-submitting the run into the queue"


@repeat()
def test_code_server_down_when_a_queued_run_is_dequeued(topology, instance, outcome, repetition):
    """Code server down when the daemon dequeues a run (a redeploy): the run goes back to the queue and succeeds once the server is back, unattended, one MLflow run"""
    topology.stop_service("daemon")  # so that the run waits in the queue until the code server is down
    try:
        run_id = launch_job(topology.web_port)
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.QUEUED
        topology.stop_service("code")
        topology.start_daemon()  # on a workspace whose code location fails to load
        started = time.monotonic()
        wait_until(
            lambda: any(REQUEUED in (entry.message or "") for entry in instance.all_logs(run_id)),
            timeout=120,
            what="the daemon to put the run back in the queue",
            interval=1,
        )
    finally:
        if "daemon" not in topology.services:
            topology.start_daemon()
        if "code" not in topology.services:
            topology.start_code()
    assert wait_for_run(topology.web_port, run_id, timeout=300) == "SUCCESS", topology.logs()
    seconds = time.monotonic() - started
    requeued = sum(REQUEUED in (entry.message or "") for entry in instance.all_logs(run_id))
    assert [r.run_id for r in instance.get_runs() if r.parent_run_id == run_id] == []  # no retry was needed
    mlflow_run = _mlflow_run_of(topology, run_id)
    _assert_finished_once(topology, mlflow_run.info.run_id, [run_id], n_estimators=100)
    wait_for_code_location(topology.web_port)  # the cases that follow launch through the webserver
    outcome.note(
        f"run put back in the queue {requeued} time(s) while the code server was down; SUCCESS {seconds:.0f} s "
        "after the daemon first met the outage, no retry, one MLflow run FINISHED"
    )


@repeat()
def test_code_server_killed_with_a_run_in_flight(topology, instance, outcome, repetition):
    """Code server killed with its run worker mid-step (a redeploy past Docker's stop grace), then started again: the dead-run check fails the run, the automatic retry finishes the same MLflow run"""
    run_id = launch_job(topology.web_port, run_config=FAULT_CONFIG)
    wait_for_step_start(instance, "model", run_id)
    code = topology.services.pop("code")
    os.killpg(code.process.pid, signal.SIGKILL)  # what Docker does to a container's processes when its grace ends
    code.stop()
    topology.start_code()
    assert wait_for_run(topology.web_port, run_id) == "FAILURE"  # nothing of the run is left to report it
    assert "is gone: killed or crashed" in _failure_text(instance, run_id)
    retry = _automatic_retry(instance, run_id)
    assert wait_for_run(topology.web_port, retry.run_id) == "SUCCESS", topology.logs()
    mlflow_run = _mlflow_run_of(topology, run_id)
    _assert_finished_once(topology, mlflow_run.info.run_id, [run_id, retry.run_id])
    wait_for_code_location(topology.web_port)  # the cases that follow launch through the webserver
    outcome.note(
        "run FAILURE from the dead-run check (no process left to report it); automatic retry SUCCESS; "
        "same MLflow run FINISHED, every artifact once"
    )


def _webserver_errors_until_recovered(topology, run_id: str) -> int:
    """Query each of the webserver's storages until all answer; how many errors that took.

    dagster-webserver holds pooled PostgreSQL connections; without deploy/dagster.yaml's IrisInstance
    (it checks each before use) the first request on each storage's stale connection failed after a restart.
    """
    queries = [
        ("{ runsOrError(limit: 1) { __typename } }", {}),
        ("query($id: ID!) { logsForRun(runId: $id) { __typename } }", {"id": run_id}),
        (
            "query($selector: RepositorySelector!) { sensorsOrError(repositorySelector: $selector) "
            "{ __typename ... on Sensors { results { sensorState { status } } } } }",
            {"selector": REPOSITORY_SELECTOR},
        ),
    ]
    errors = 0
    for _ in range(20):
        failed = 0
        for query, variables in queries:
            try:
                data = graphql(topology.web_port, query, variables)
                failed += "PythonError" in json.dumps(data)
            except AssertionError:  # a 5xx (GraphQLServerError) or a GraphQL error body
                failed += 1
        if not failed:
            return errors
        errors += failed
    raise AssertionError(f"the webserver still fails after {errors} errors:\n{topology.logs()}")


# -- concurrency --------------------------------------------------------------------------------


def test_eight_runs_at_once_through_the_queue(topology, instance, outcome):
    """8 runs with different hyperparameters launched at once through the run queue: 8 separate, complete MLflow runs"""
    configs = [{"n_estimators": 10 * (i + 1), "max_depth": 3 + i} for i in range(8)]
    run_ids = [launch_job(topology.web_port, run_config={"ops": {"model": {"config": c}}}) for c in configs]
    statuses = [wait_for_run(topology.web_port, run_id, timeout=600) for run_id in run_ids]
    assert statuses == ["SUCCESS"] * 8, topology.logs()
    for run_id, config in zip(run_ids, configs, strict=True):
        run = _mlflow_run_of(topology, run_id)
        assert run.data.tags[DAGSTER_RUN_IDS_TAG] == run_id
        assert run.data.params["n_estimators"] == str(config["n_estimators"])
        assert run.data.params["max_depth"] == str(config["max_depth"])
        assert sorted(artifact_paths(topology.mlflow_url, run.info.run_id)) == sorted(EXPECTED_ARTIFACTS)
        assert run.info.status == "FINISHED" and set(run.data.metrics) >= {
            "accuracy",
            "precision",
            "recall",
            "f1_score",
        }
    errors = [e for r in run_ids for e in instance.all_logs(r, of_type=dg.DagsterEventType.STEP_FAILURE)]
    assert errors == []
    # Promotions were decided one at a time (the registry pool): no two promoted versions
    # were compared with the same champion, and every decision names the champion it faced.
    versions = topology.mlflow_client().search_model_versions("name = 'iris-classifier'")
    mine = [v for v in versions if v.tags.get("dagster_run_id") in run_ids]
    assert len(mine) == 8
    promoted = [v.tags["compared_with"] for v in mine if v.tags["promotion"] == "promoted"]
    assert len(promoted) == len(set(promoted)), [
        (v.version, v.tags["promotion"], v.tags["compared_with"]) for v in mine
    ]
    champion = topology.mlflow_client().get_model_version_by_alias("iris-classifier", "champion").version
    assert str(champion) in {str(v.version) for v in versions}
    outcome.note(
        f"8 SUCCESS; 8 MLflow runs FINISHED, each with its own params and all artifacts; no step failure; "
        f"{len(promoted)} promotion(s), each against a different champion"
    )


# -- secrets (last: searches what every case above wrote) ----------------------------------------


def test_no_secret_in_any_store(topology, instance, outcome):
    """Credentials (MLflow's, one in the tracking URI, the database password) appear in no MLflow param or tag, run config, event log, compute log or service output"""
    secrets = [*SECRETS.values(), DB_PASSWORD, URI_PASSWORD]
    assert instance.get_runs(), "the cases above ran nothing"
    found: list[str] = []

    # MLflow: every run's params and tags, every registered model and version.
    client = topology.mlflow_client()
    from mlflow.entities import ViewType

    experiments = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL, max_results=5000)
    assert runs
    for run in runs:
        found += [
            f"mlflow run {run.info.run_id}: {s}" for s in secrets if s in json.dumps([run.data.params, run.data.tags])
        ]
    for model in client.search_registered_models():
        found += [f"registered model {model.name}" for s in secrets if s in json.dumps(model.tags)]
    for version in client.search_model_versions():
        found += [f"model version {version.version}" for s in secrets if s in json.dumps(version.tags)]

    # Dagster: run config and tags, every event of every run (PostgreSQL), compute logs (files).
    for run in instance.get_runs():
        text = dg.serialize_value(run.run_config) + dg.serialize_value(run.tags)
        text += "".join(dg.serialize_value(entry) for entry in instance.all_logs(run.run_id))
        found += [f"dagster run {run.run_id}: {s}" for s in secrets if s in text]
    compute_logs = [p for p in (topology.home / "storage").rglob("*") if p.is_file()]
    assert compute_logs, "no compute log was written"
    # ... and everything the services printed (run workers print to the code server's output).
    for path in [*compute_logs, *topology.folder.glob("*.log")]:
        content = path.read_bytes()
        found += [f"{path}: {s}" for s in secrets if s.encode() in content]
    assert found == []
    outcome.note(
        f"searched {len(runs)} MLflow runs, {len(instance.get_runs())} Dagster runs and their events, {len(compute_logs)} compute log files: no secret"
    )
