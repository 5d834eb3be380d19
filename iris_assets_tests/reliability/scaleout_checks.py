"""The scale-out topology of test_scaleout.py, and what its cases check.

The topology (iris_harness/scaleout.py): PostgreSQL over TCP, RabbitMQ, SeaweedFS, the MLflow
server storing artifacts in the bucket, the code server, webserver and daemon, and two
`iris-worker` processes with their own folders and homes, with the default outage limit
($IRIS_OUTAGE_LIMIT_SECONDS = 60 s) and deploy/dagster.yaml's one automatic run retry. One per
module: a second one beside it (the cases split in two modules) made the suite slower on two
cores (23:13 against 20:45), its services competing with everything else.
"""

import pickle
import time
from collections import Counter

import dagster as dg

from iris_assets.settings import DEFAULT_EXPERIMENT, DEFAULT_OUTAGE_LIMIT_SECONDS
from iris_assets.tracking.tags import DAGSTER_RUN_ID_TAG, DAGSTER_RUN_IDS_TAG
from iris_assets_tests.mlflow_checks import assert_complete_iris_run
from iris_harness.graphql_client import wait_for_run
from iris_harness.scaleout import BUCKET, ScaleOut

CELERY = {"execution": {"config": {"celery": {}}}}
# Big enough that the model step is still running when a fault lands.
SLOW_MODEL = {"ops": {"model": {"config": {"n_estimators": 2000, "n_jobs": 1}}}}
# The executors that run steps without Celery, and the line each logs as a run starts.
LOCAL_EXECUTORS = {"in_process": "Executing steps in process", "multiprocess": "Executing steps using multiprocess"}
STORED_ASSETS = ["raw_data", "splits", "model", "metrics", "onnx_model"]  # registered_model stores no value


def start_topology(tmp_path_factory):
    """A module's topology (its fixture: ``pytest.fixture(scope="module", name="scaleout")(start_topology)``)."""
    # The default outage limit (the suite's is 5 s): the outage cases stop services for up to 45 s.
    topology = ScaleOut(
        tmp_path_factory.mktemp("scaleout"),
        workers=2,
        env={"IRIS_OUTAGE_LIMIT_SECONDS": str(DEFAULT_OUTAGE_LIMIT_SECONDS)},
    )
    try:
        yield topology.start()
    finally:
        topology.stop()


def open_instance(scaleout):
    """The topology's Dagster instance (its fixture: ``pytest.fixture(scope="module", name="instance")``)."""
    with scaleout.topology.instance() as instance:
        yield instance


def why_failed(scaleout, instance, run_id: str) -> str:
    """The run's failure messages, then the services' logs: what an assertion shows."""
    texts = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type in (
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.RUN_FAILURE,
        ):
            error = getattr(event.event_specific_data, "error", None)
            texts.append((entry.message or "") + (error.to_string() if error else ""))
    workers = "\n".join(f"--- worker{i}\n{w.log()[-2000:]}" for i, w in scaleout.workers.items())
    return "\n".join(texts)[-6000:] + "\n" + workers


def final_status(scaleout, instance, run_id: str, timeout: float = 900) -> str:
    """The run's final status; a run that never ends fails the test with what `_why` shows."""
    try:
        return wait_for_run(scaleout.topology.web_port, run_id, timeout=timeout)
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{why_failed(scaleout, instance, run_id)}") from None


def mlflow_run_of(scaleout, dagster_run_id: str):
    client = scaleout.topology.mlflow_client()
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.{DAGSTER_RUN_ID_TAG} = '{dagster_run_id}'"
    )
    return run


def workers_by_step(scaleout, instance, run_id: str) -> dict[str, int]:
    steps = {e.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)}
    return {step: scaleout.worker_of(instance, run_id, step) for step in steps}


def assert_values_in_the_bucket(scaleout, run_id: str) -> None:
    keys = scaleout.store.keys("dagster/")
    for asset in STORED_ASSETS:
        assert f"dagster/{asset}/{run_id}.pickle" in keys, (asset, [k for k in keys if run_id in k])


def count(values) -> dict:
    return dict(Counter(values))


def successes_by_step(instance, run_id: str) -> dict[str, int]:
    return count(entry.step_key for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS))


def stored_values(scaleout, run_id: str, assets=STORED_ASSETS) -> dict[str, tuple]:
    """Each stored value of the run: (its object's ETag and time, the value unpickled)."""
    s3 = scaleout.store.client()
    values = {}
    for asset in assets:
        key = f"dagster/{asset}/{run_id}.pickle"
        head = s3.head_object(Bucket=BUCKET, Key=key)
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        values[asset] = (head["ETag"], head["LastModified"], pickle.loads(body))
    return values


def assert_recorded_once(
    scaleout, instance, run_id: str, mlflow_run, dagster_runs: list[str], n_estimators: int = 2000
) -> None:
    """One FINISHED MLflow run holding each step's work once: one model of each name, one registry version."""
    client = scaleout.topology.mlflow_client()
    finished = client.get_run(mlflow_run.info.run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.tags[DAGSTER_RUN_IDS_TAG].split() == dagster_runs
    assert_complete_iris_run(scaleout.topology.mlflow_url, finished, n_estimators=n_estimators)  # each artifact once
    models = client.search_logged_models(
        experiment_ids=[finished.info.experiment_id], filter_string=f"source_run_id = '{finished.info.run_id}'"
    )
    assert sorted(m.name for m in models) == ["model", "onnx"]
    registered = scaleout.topology.env.get("IRIS_REGISTERED_MODEL") or default_registered_model()
    versions = [v for v in client.search_model_versions(f"name = '{registered}'") if v.run_id == finished.info.run_id]
    assert len(versions) == 1, versions


def errors_in(instance, run_id: str) -> list:
    """Every error the run's event log holds (step, engine and run failures), whole."""
    found = []
    for entry in instance.all_logs(run_id):
        error = getattr(entry.dagster_event.event_specific_data, "error", None) if entry.dagster_event else None
        if error is not None:
            found.append(error)
    return found


def default_registered_model() -> str:
    from iris_assets import settings

    return settings.current().registered_model


def outage(stop, start, seconds: float) -> float:
    """Stop a service, start it again after ``seconds``; how long it was away (until it answered again)."""
    stopped = time.monotonic()
    stop()
    time.sleep(seconds)
    start()
    return time.monotonic() - stopped


def has_stored_model(scaleout, run_id: str) -> bool:
    return f"dagster/model/{run_id}.pickle" in scaleout.store.keys(f"dagster/model/{run_id}")
