"""Outages of the scale-out's services under Celery runs: the broker and the object store stop mid-step.

One topology for the module (iris_harness/scaleout.py, as test_scaleout's), started with
the default outage limit ($IRIS_OUTAGE_LIMIT_SECONDS, 60 s) and deploy/dagster.yaml's one
automatic run retry. A blip within the limit must cost nothing: the run ends SUCCESS
with no one acting, bound to one FINISHED MLflow run, each step's work recorded once.
An outage past the limit fails the run naming the broker; its automatic retry waits for
the broker, fails before any step, and a re-execution of that retry continues the chain's
first MLflow run; a step message the broker hands out again for the failed run is dropped.
"""

import pickle
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from iris_assets.execution.outages import broker_address
from iris_assets.settings import DEFAULT_OUTAGE_LIMIT_SECONDS
from iris_assets.tracking.tags import DAGSTER_RUN_IDS_TAG
from iris_assets_tests.mlflow_checks import assert_complete_iris_run
from iris_assets_tests.reliability.test_scaleout import CELERY, SLOW_MODEL, STORED_ASSETS, _mlflow_run, _why
from iris_harness.graphql_client import launch_job, reexecute_from_failure, wait_for_run
from iris_harness.processes import wait_until
from iris_harness.runs import wait_for_step_start
from iris_harness.scaleout import BUCKET, ScaleOut

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def scaleout(tmp_path_factory):
    topology = ScaleOut(
        tmp_path_factory.mktemp("outages"),
        workers=2,
        env={"IRIS_OUTAGE_LIMIT_SECONDS": str(DEFAULT_OUTAGE_LIMIT_SECONDS)},
    )
    try:
        yield topology.start()
    finally:
        topology.stop()


@pytest.fixture(scope="module")
def instance(scaleout):
    with scaleout.topology.instance() as instance:
        yield instance


def _successes_by_step(instance, run_id: str) -> dict[str, int]:
    counted: dict[str, int] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
        counted[entry.step_key] = counted.get(entry.step_key, 0) + 1
    return counted


def _stored(scaleout, run_id: str, assets=STORED_ASSETS) -> dict[str, tuple]:
    """Each stored value of the run: (its object's ETag and time, the value unpickled)."""
    s3 = scaleout.store.client()
    values = {}
    for asset in assets:
        key = f"dagster/{asset}/{run_id}.pickle"
        head = s3.head_object(Bucket=BUCKET, Key=key)
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        values[asset] = (head["ETag"], head["LastModified"], pickle.loads(body))
    return values


def _assert_recorded_once(scaleout, instance, run_id: str, mlflow_run, dagster_runs: list[str]) -> None:
    """One FINISHED MLflow run holding each step's work once: one model of each name, one registry version."""
    client = scaleout.topology.mlflow_client()
    finished = client.get_run(mlflow_run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.tags[DAGSTER_RUN_IDS_TAG].split() == dagster_runs
    assert_complete_iris_run(scaleout.topology.mlflow_url, finished, n_estimators=2000)  # each artifact once
    models = client.search_logged_models(
        experiment_ids=[finished.info.experiment_id], filter_string=f"source_run_id = '{finished.info.run_id}'"
    )
    assert sorted(m.name for m in models) == ["model", "onnx"]
    registered = scaleout.topology.env.get("IRIS_REGISTERED_MODEL") or _default_registered_model()
    versions = [v for v in client.search_model_versions(f"name = '{registered}'") if v.run_id == finished.info.run_id]
    assert len(versions) == 1, versions


def _errors(instance, run_id: str) -> list:
    """Every error the run's event log holds (step, engine and run failures), whole."""
    found = []
    for entry in instance.all_logs(run_id):
        error = getattr(entry.dagster_event.event_specific_data, "error", None) if entry.dagster_event else None
        if error is not None:
            found.append(error)
    return found


def _default_registered_model() -> str:
    from iris_assets import settings

    return settings.current().registered_model


def _outage(services, seconds: float) -> float:
    """Stop ``services`` together, start them again after ``seconds``; how long they were away
    (until each answered again)."""
    stopped = time.monotonic()
    with ThreadPoolExecutor(len(services)) as together:  # side by side, as one machine's reboot
        list(together.map(lambda service: service.stop(), services))
        time.sleep(seconds)
        list(together.map(lambda service: service.start(), services))
    return time.monotonic() - stopped


@pytest.mark.parametrize("seconds", [10, 45])
def test_broker_and_object_store_stopped_mid_step(scaleout, instance, outcome, seconds):
    """Broker and object store stopped together mid-step for 10 s, then 45 s: SUCCESS unattended, one FINISHED MLflow run, each step once, every stored value intact"""
    run_id = launch_job(scaleout.topology.web_port, run_config={**CELERY, **SLOW_MODEL})
    wait_for_step_start(instance, "model", run_id, timeout=300)
    time.sleep(1)
    away = _outage([scaleout.broker, scaleout.store], seconds)
    assert wait_for_run(scaleout.topology.web_port, run_id, timeout=900) == "SUCCESS", _why(scaleout, instance, run_id)
    assert [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/root_run_id": run_id}))] == []
    successes = _successes_by_step(instance, run_id)
    assert successes == {s: 1 for s in [*STORED_ASSETS, "registered_model"]}, successes
    _assert_recorded_once(scaleout, instance, run_id, _mlflow_run(scaleout, run_id), [run_id])
    stored = _stored(scaleout, run_id)
    assert stored["model"][2].n_estimators == 2000 and len(stored["splits"][2].X_test) == 30
    outcome.note(
        f"services away {away:.0f} s (stopped {seconds} s, then their restart): SUCCESS without a retry, "
        "one FINISHED MLflow run, each step once, one model and version, values intact"
    )


def test_broker_down_past_the_limit(scaleout, instance, outcome):
    """Broker down past the limit mid-run: the run fails naming the broker; its automatic retry waits the limit for the broker and fails before any step; re-execution from failure of that retry finishes the first MLflow run; the step redelivered for the failed run is dropped"""
    run_id = launch_job(scaleout.topology.web_port, run_config={**CELERY, **SLOW_MODEL})
    wait_for_step_start(instance, "model", run_id, timeout=300)
    mlflow_run = _mlflow_run(scaleout, run_id)
    named = f"The Celery broker at {broker_address(scaleout.broker.url)} did not answer"
    stopped = time.monotonic()
    scaleout.broker.stop()
    try:
        assert wait_for_run(scaleout.topology.web_port, run_id, timeout=600) == "FAILURE"
        failed_after = time.monotonic() - stopped
        model_value = _stored(scaleout, run_id, ["model"])["model"][:2] if _has_model(scaleout, run_id) else None
        retry = wait_until(
            lambda: instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id})),
            120,
            "the automatic retry",
        )[0]
        assert wait_for_run(scaleout.topology.web_port, retry.run_id, timeout=600) == "FAILURE"
    finally:
        scaleout.broker.start()
    for failed in (run_id, retry.run_id):
        errors = _errors(instance, failed)
        assert any(named in error.message for error in errors), [error.message for error in errors]
        assert not any("guest:guest" in error.to_string() for error in errors)  # the broker URL's credentials
    retry_log = [entry.message or "" for entry in instance.all_logs(retry.run_id)]
    assert any(
        line.startswith(f"Waiting up to {DEFAULT_OUTAGE_LIMIT_SECONDS} s") and "Celery broker" in line
        for line in retry_log
    ), retry_log
    assert not instance.all_logs(retry.run_id, of_type=dg.DagsterEventType.STEP_START)  # failed before any step
    resumed = reexecute_from_failure(scaleout.topology.web_port, retry.run_id)  # the UI's call
    assert wait_for_run(scaleout.topology.web_port, resumed, timeout=900) == "SUCCESS", _why(
        scaleout, instance, resumed
    )
    _assert_recorded_once(scaleout, instance, run_id, mlflow_run, [run_id, resumed])
    # The model step had ended while the broker was away: its message, never acknowledged,
    # came back with the broker and was dropped (the run had failed), writing nothing.
    dropped = f"Dropped step 'model' of run {run_id}: the run is FAILURE."
    wait_until(
        lambda: any(dropped in w.log() for w in scaleout.workers.values()), 120, "a worker to drop the redelivered step"
    )
    assert model_value is not None and _stored(scaleout, run_id, ["model"])["model"][:2] == model_value
    outcome.note(
        f"run FAILED {failed_after:.0f} s after the broker stopped, naming it; its automatic retry waited "
        f"{DEFAULT_OUTAGE_LIMIT_SECONDS} s, failed before any step naming it; re-execution from failure of the retry SUCCESS, the first MLflow run "
        "FINISHED once; redelivered model step dropped, nothing rewritten"
    )


def _has_model(scaleout, run_id: str) -> bool:
    return f"dagster/model/{run_id}.pickle" in scaleout.store.keys(f"dagster/model/{run_id}")
