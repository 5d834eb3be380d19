"""Beyond one machine: steps on Celery workers, values and artifacts in S3-compatible storage.

On the module's topology (reliability/scaleout_checks.py, with the default outage limit,
$IRIS_OUTAGE_LIMIT_SECONDS = 60 s, and deploy/dagster.yaml's one automatic run retry), runs are
launched through the webserver's GraphQL API with `execution: {config: {celery: {}}}`: the whole
graph, a dataset, runs through the queue, a worker killed, a run canceled, artifacts without
credentials, a sweep, and a run worker killed while its step runs on a worker (the step is stopped
before the retry writes).

Then services stop. Within the limit it must cost nothing: the run ends SUCCESS with no one
acting, bound to one FINISHED MLflow run, each step's work recorded once — PostgreSQL alone, then
with the broker and the object store, on the workers; PostgreSQL then the MLflow server on the
multiprocess executor. Past the limit the failure names the service: PostgreSQL and the object
store behind the MLflow server (on a short limit), the broker (its automatic retry waits for it,
a re-execution of that retry continues the chain's first MLflow run, a step message handed out
again for the failed run is dropped).
"""

import os
import signal
import subprocess
import sys
import threading
import time

import dagster as dg
import pytest
import yaml

from iris_assets.execution.outages import broker_address
from iris_assets.settings import DEFAULT_EXPERIMENT, DEFAULT_OUTAGE_LIMIT_SECONDS
from iris_assets.tracking.tags import DAGSTER_RUN_ID_TAG, DAGSTER_RUN_IDS_TAG
from iris_assets_tests.mlflow_checks import EXPECTED_ARTIFACTS, artifact_paths, assert_complete_iris_run
from iris_assets_tests.reliability.conftest import repeat
from iris_assets_tests.reliability.scaleout_checks import (
    CELERY,
    LOCAL_EXECUTORS,
    SLOW_MODEL,
    STORED_ASSETS,
    assert_recorded_once,
    assert_values_in_the_bucket,
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
    workers_by_step,
)
from iris_harness.environment import BIN, QUIET_ENV
from iris_harness.graphql_client import (
    RUN_EVENTS,
    graphql,
    launch_job,
    reexecute_from_failure,
    terminate,
    wait_for_run,
)
from iris_harness.processes import wait_until
from iris_harness.runs import run_worker_pid, wait_for_step_start
from iris_harness.scaleout import S3_SECRET

pytestmark = pytest.mark.servers

scaleout = pytest.fixture(scope="module", name="scaleout")(start_topology)
instance = pytest.fixture(scope="module", name="instance")(open_instance)


def test_the_whole_graph_on_celery_workers(scaleout, instance, outcome):
    """The whole graph on two Celery workers: one FINISHED MLflow run, steps on both workers, values in the bucket per run"""
    run_id = launch_job(scaleout.topology.web_port, run_config=CELERY)
    assert final_status(scaleout, instance, run_id, timeout=600) == "SUCCESS", why_failed(scaleout, instance, run_id)
    run = mlflow_run_of(scaleout, run_id)
    assert_complete_iris_run(scaleout.topology.mlflow_url, run)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server, stored in the bucket
    assert [k for k in scaleout.store.keys("mlartifacts/") if run.info.run_id in k]
    by_step = workers_by_step(scaleout, instance, run_id)
    assert set(by_step) == {"raw_data", "splits", "model", "metrics", "onnx_model", "registered_model"}
    assert None not in by_step.values()
    assert_values_in_the_bucket(scaleout, run_id)
    outcome.note(
        f"SUCCESS; one MLflow run FINISHED; steps on workers {sorted(set(by_step.values()))}; values and artifacts in the bucket"
    )


def test_a_dataset_on_celery_workers_from_a_terminal(scaleout, instance, tmp_path, outcome):
    """Wine's pipeline (datasets/wine.yaml) from a terminal with the celery executor: its steps on the workers
    (each rebuilds Wine's location from the run's origin), one FINISHED MLflow run in wine-classification"""
    config = tmp_path / "celery.yaml"
    config.write_text("execution:\n  config:\n    celery: {}\n")
    command = [
        str(BIN / "dagster"),
        "job",
        "execute",
        "-m",
        "iris_assets.datasets.locations",
        "-a",
        "wine",
        "-j",
        "wine_pipeline",
    ]
    done = subprocess.run(
        [*command, "-c", str(config)], cwd=scaleout.folder, env={**os.environ, **QUIET_ENV, **scaleout.topology.env},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    (run,) = [r for r in instance.get_runs(limit=20) if r.job_name == "wine_pipeline"]
    assert run.status == dg.DagsterRunStatus.SUCCESS
    by_step = workers_by_step(scaleout, instance, run.run_id)
    assert len(by_step) == 6 and None not in by_step.values(), by_step
    client = scaleout.topology.mlflow_client()
    experiment = client.get_experiment_by_name("wine-classification")
    (mlflow_run,) = client.search_runs([experiment.experiment_id], f"tags.{DAGSTER_RUN_ID_TAG} = '{run.run_id}'")
    assert mlflow_run.info.status == "FINISHED" and "accuracy" in mlflow_run.data.metrics
    assert [k for k in scaleout.store.keys("dagster/wine/") if run.run_id in k]  # its values in the bucket
    outcome.note(
        f"SUCCESS; steps on workers {sorted(set(by_step.values()))}; one MLflow run FINISHED in its experiment"
    )


def test_eight_runs_through_the_queue_on_the_workers(scaleout, instance, outcome):
    """8 runs with different hyperparameters through the run queue on the Celery workers: 8 separate, complete MLflow runs"""
    configs = [{"n_estimators": 10 * (i + 1), "max_depth": 3 + i} for i in range(8)]
    run_ids = [
        launch_job(scaleout.topology.web_port, run_config={**CELERY, "ops": {"model": {"config": c}}}) for c in configs
    ]
    statuses = [wait_for_run(scaleout.topology.web_port, r, timeout=900) for r in run_ids]
    assert statuses == ["SUCCESS"] * 8, [why_failed(scaleout, instance, r) for r in run_ids]
    workers = set()
    for run_id, config in zip(run_ids, configs, strict=True):
        run = mlflow_run_of(scaleout, run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags[DAGSTER_RUN_IDS_TAG] == run_id
        assert run.data.params["n_estimators"] == str(config["n_estimators"])
        assert run.data.params["max_depth"] == str(config["max_depth"])
        assert sorted(artifact_paths(scaleout.topology.mlflow_url, run.info.run_id)) == sorted(EXPECTED_ARTIFACTS)
        assert_values_in_the_bucket(scaleout, run_id)
        workers |= set(workers_by_step(scaleout, instance, run_id).values())
    # No value was read from another run: every input came from its own run's key in the bucket.
    for run_id in run_ids:
        loaded = instance.all_logs(run_id, of_type=dg.DagsterEventType.LOADED_INPUT)
        assert loaded
        for entry in loaded:
            metadata = entry.dagster_event.event_specific_data.metadata
            assert metadata["source_run_id"].value == run_id, (run_id, metadata)
            assert str(metadata["stored_at"].value).startswith("s3://iris/dagster/"), metadata
    outcome.note(
        f"8 SUCCESS; 8 MLflow runs FINISHED with their own params and artifacts; workers used: {sorted(workers)}"
    )


@repeat()
def test_a_worker_killed_mid_step(scaleout, instance, outcome, repetition):
    """A Celery worker SIGKILLed mid-step: RabbitMQ gives the step to the other worker; the run and its MLflow run finish, nothing logged twice"""
    run_id = launch_job(scaleout.topology.web_port, run_config={**CELERY, **SLOW_MODEL})
    wait_for_step_start(instance, "model", run_id, timeout=300)
    # (A one-element list: worker 0 is falsy, and wait_until waits for a truthy value.)
    (victim,) = wait_until(
        lambda: [w for w in [scaleout.worker_of(instance, run_id, "model")] if w is not None],
        60,
        "the model step's worker",
    )
    scaleout.kill_worker(victim)
    try:
        assert final_status(scaleout, instance, run_id) == "SUCCESS", why_failed(scaleout, instance, run_id)
    finally:
        scaleout.start_worker(victim)
        scaleout.wait_worker(victim)
    starts = [e for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START) if e.step_key == "model"]
    assert len(starts) == 2  # it did run twice: once killed, once to the end
    run = mlflow_run_of(scaleout, run_id)
    client = scaleout.topology.mlflow_client()
    assert_complete_iris_run(scaleout.topology.mlflow_url, run, n_estimators=2000)  # each artifact once
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    assert sorted(m.name for m in models) == ["model", "onnx"]  # one of each name
    versions = [v for v in client.search_model_versions("name = 'iris-classifier'") if v.run_id == run.info.run_id]
    assert len(versions) == 1
    inputs = count(d.dataset.name for d in run.inputs.dataset_inputs)
    assert inputs == {"iris_raw": 1, "iris_train": 1, "iris_test": 1}
    outcome.note(
        "step redelivered to the other worker; run SUCCESS; MLflow run FINISHED: one model of each name, one version, artifacts and inputs once"
    )


def test_a_celery_run_canceled_then_reexecuted(scaleout, instance, outcome):
    """A Celery run canceled mid-step: its MLflow run ends KILLED; re-execution from failure, on the workers, finishes the same MLflow run"""
    run_id = launch_job(scaleout.topology.web_port, run_config={**CELERY, **SLOW_MODEL})
    wait_for_step_start(instance, "model", run_id, timeout=300)
    terminate(scaleout.topology.web_port, run_id)
    assert wait_for_run(scaleout.topology.web_port, run_id, timeout=300) == "CANCELED"
    mlflow_run = mlflow_run_of(scaleout, run_id)
    client = scaleout.topology.mlflow_client()
    wait_until(
        lambda: client.get_run(mlflow_run.info.run_id).info.status == "KILLED", 180, "the MLflow run to end KILLED"
    )
    child = reexecute_from_failure(scaleout.topology.web_port, run_id)
    assert final_status(scaleout, instance, child, timeout=900) == "SUCCESS", why_failed(scaleout, instance, child)
    finished = client.get_run(mlflow_run.info.run_id)
    assert finished.data.tags[DAGSTER_RUN_IDS_TAG].split() == [run_id, child]
    assert_complete_iris_run(scaleout.topology.mlflow_url, finished, n_estimators=2000)
    outcome.note("CANCELED, MLflow KILLED; re-execution from failure on the workers: same MLflow run FINISHED")


def test_a_client_without_storage_credentials_downloads_artifacts(scaleout, tmp_path, outcome):
    """A client with no storage credentials downloads a run's artifacts and loads its model through the MLflow server"""
    client = scaleout.topology.mlflow_client()
    experiment = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
    run = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=1)[
        0
    ]
    code = (
        "import json, os, sys, mlflow\n"
        "from mlflow import MlflowClient\n"
        "assert not [k for k in os.environ if k.startswith('AWS_')]\n"
        "run_id = sys.argv[1]\n"
        "path = MlflowClient().download_artifacts(run_id, 'confusion_matrix.json', sys.argv[2])\n"
        "model = mlflow.pyfunc.load_model(f'runs:/{run_id}/model')\n"
        "print(json.dumps({'labels': json.load(open(path))['labels'], 'model': type(model).__name__}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(QUIET_ENV, MLFLOW_TRACKING_URI=scaleout.topology.mlflow_url)
    result = subprocess.run(
        [sys.executable, "-c", code, run.info.run_id, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        '"labels": ["setosa", "versicolor", "virginica"]' in result.stdout and '"model": "PyFuncModel"' in result.stdout
    )
    outcome.note("no AWS_* variable: artifacts downloaded and the model loaded through the server")


def test_a_twelve_trial_sweep_on_the_workers(scaleout, instance, tmp_path, outcome):
    """A sweep of 12 trials launched from Python with the celery executor, through the run queue on the workers: one parent, 12 children, nothing mixed"""
    from iris_assets.settings import DEFAULT_TUNING_EXPERIMENT
    from iris_assets.tracking.election import announced_mlflow_runs
    from iris_assets.tuning.launch import launch_sweep, wait_for_sweep
    from iris_assets.tuning.ops import SWEEP_PARENT_TAG, SWEEP_TAG, TRIAL_TAG

    if instance.get_latest_materialization_event(dg.AssetKey("splits")) is None:  # the sweep pins the splits
        first = launch_job(scaleout.topology.web_port, run_config=CELERY)
        assert final_status(scaleout, instance, first, timeout=600) == "SUCCESS", why_failed(scaleout, instance, first)
    sweep_file = tmp_path / "twelve.yaml"
    sweep_file.write_text("name: twelve\ngrid:\n  n_estimators: [10, 20, 30, 40]\n  max_depth: [3, 6, 9]\n")
    url = scaleout.topology.env["DAGSTER_UI_URL"]
    sweep_run_id = launch_sweep(str(sweep_file), url, executor="celery")
    progress: list[str] = []
    status = wait_for_sweep(sweep_run_id, url, progress.append)
    runs = instance.get_runs(filters=dg.RunsFilter(tags={SWEEP_TAG: sweep_run_id}))
    assert status == "SUCCESS", [why_failed(scaleout, instance, r.run_id) for r in [*runs]] + progress
    assert sum(line.startswith("trial ") for line in progress) == 12, progress

    client = scaleout.topology.mlflow_client()
    experiment = client.get_experiment_by_name(DEFAULT_TUNING_EXPERIMENT)
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{SWEEP_PARENT_TAG}` = 'true'")
    (parent_id,) = set(announced_mlflow_runs(instance, sweep_run_id))
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED"
    assert len(parents) == 1  # one parent for the one sweep
    experiment_id = parent.info.experiment_id
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    everything = client.search_runs([experiment_id])
    assert len(children) == 12 and len(everything) == 13, [r.data.tags for r in everything]
    trial_runs = {r.run_id: r for r in runs if "dagster/partition" in r.tags}
    assert len(trial_runs) == 12 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in trial_runs.values())
    workers = []
    for child in children:
        dagster_run = trial_runs[child.data.tags["dagster_run_id"]]  # its own trial's run, of this sweep
        key = dagster_run.tags["dagster/partition"]
        assert child.data.tags[TRIAL_TAG] == key and child.info.status == "FINISHED"
        n_estimators, max_depth = int(key.split("n_estimators=")[1]), int(key.split("__")[0].split("=")[1])
        assert child.data.params["n_estimators"] == str(n_estimators)
        assert child.data.params["max_depth"] == str(max_depth)
        assert child.data.tags["dagster_run_ids"] == dagster_run.run_id
        by_step = workers_by_step(scaleout, instance, dagster_run.run_id)
        assert set(by_step) == {"trial"} and None not in by_step.values(), by_step
        workers += by_step.values()
        assert f"dagster/{dagster_run.run_id}/trial/result.pickle" in scaleout.store.keys(
            f"dagster/{dagster_run.run_id}/"
        )
    assert len({child.data.tags["dagster_run_id"] for child in children}) == 12
    assert parent.data.metrics["trials"] == 12
    outcome.note(
        f"parent FINISHED, 12 children each bound to its own trial run; trial steps per worker {count(workers)}"
    )


def test_a_run_failed_with_its_step_still_on_a_worker_then_its_retry(scaleout, instance, outcome):
    """Run worker killed while `model` runs on a Celery worker: the run fails, the worker stops the orphaned step, and only then does the automatic retry write into the same MLflow run: SUCCESS, the MLflow run FINISHED with each step's work once, nothing from the orphan"""
    run_id = launch_job(scaleout.topology.web_port, run_config={**CELERY, **SLOW_MODEL})
    wait_for_step_start(instance, "model", run_id, timeout=300)
    mlflow_run = mlflow_run_of(scaleout, run_id)
    os.kill(run_worker_pid(instance, run_id), signal.SIGKILL)
    assert wait_for_run(scaleout.topology.web_port, run_id, timeout=300) == "FAILURE"
    stopped = f"Stopped step 'model' of run {run_id}: the run is FAILURE"
    wait_until(lambda: any(stopped in w.log() for w in scaleout.workers.values()), 60, "a worker to stop the step")
    retry = wait_until(
        lambda: instance.get_runs(filters=dg.RunsFilter(tags={"dagster/parent_run_id": run_id})),
        300,
        "the automatic retry",
    )[0]
    assert final_status(scaleout, instance, retry.run_id, timeout=900) == "SUCCESS", why_failed(
        scaleout, instance, retry.run_id
    )
    # The orphan wrote nothing: no success, no stored value; its message came back and was dropped.
    assert "model" not in successes_by_step(instance, run_id)
    assert not has_stored_model(scaleout, run_id)
    dropped = f"Dropped step 'model' of run {run_id}: the run is FAILURE."
    wait_until(lambda: any(dropped in w.log() for w in scaleout.workers.values()), 120, "the stopped step dropped")
    assert_recorded_once(scaleout, instance, run_id, mlflow_run, [run_id, retry.run_id])
    outcome.note(
        "run FAILURE (its run worker killed mid-`model`); the worker stopped the orphaned step; the automatic retry "
        "SUCCESS; one FINISHED MLflow run, one model and version, nothing stored by the orphan"
    )


# -- Services that stop (the default 60 s limit, and two cases on a short one) ------------------------


def _outages_mid_run(instance, run_id: str, outages: list) -> list[float]:
    """Each of ``outages`` (stop, start, seconds) in turn: the first a second into `model`, the next once a
    later step has started; how long each service was away."""
    away, later_steps = [], iter(["metrics", "registered_model"])
    wait_for_step_start(instance, "model", run_id, timeout=300)
    time.sleep(1)
    for stop, start, seconds in outages:
        away.append(outage(stop, start, seconds))
        if len(away) < len(outages):
            wait_for_step_start(instance, next(later_steps), run_id, timeout=300)
    return away


def _assert_rode_it_out(scaleout, instance, run_id: str, outages_ended: float) -> None:
    """After the services came back: the run SUCCEEDED without a retry, its log holds each step's start
    and success once, it is bound to one FINISHED MLflow run holding each step's work once; the
    webserver answers at once (its pooled connections were checked), the daemon's loops beat again and its sensors tick."""
    assert final_status(scaleout, instance, run_id, timeout=900) == "SUCCESS", why_failed(scaleout, instance, run_id)
    graphql(scaleout.topology.web_port, RUN_EVENTS, {"id": run_id})  # raises on an error answer
    assert [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={"dagster/root_run_id": run_id}))] == []
    every_step = {s: 1 for s in [*STORED_ASSETS, "registered_model"]}
    starts = count(e.dagster_event.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START))
    assert starts == every_step and successes_by_step(instance, run_id) == every_step, starts
    assert_recorded_once(scaleout, instance, run_id, mlflow_run_of(scaleout, run_id), [run_id])
    wait_until(
        lambda: all(beat.timestamp > outages_ended for beat in instance.get_daemon_heartbeats().values()),
        120,
        "every daemon to beat after the outage",
    )
    wait_until(lambda: _sensors_ticked_since(instance, outages_ended), 120, "a sensor tick after the outage")
    assert scaleout.topology.services["daemon"].process.poll() is None


def _sensors_ticked_since(instance, moment: float) -> list[str]:
    """The sensors (all RUNNING by default) with a tick recorded after ``moment``."""
    return [
        state.instigator_name
        for state in instance.all_instigator_state()
        if state.instigator_type.name == "SENSOR"
        and instance.get_ticks(state.instigator_origin_id, state.selector_id, after=moment, limit=1)
    ]


def test_every_service_stopped_mid_run_within_the_limit_on_the_workers(scaleout, instance, outcome):
    """On the Celery workers: PostgreSQL (Dagster's storage, Celery's results, the step leases, MLflow's backend store) stopped 10 s mid-step, then PostgreSQL, the broker and the object store stopped together for 45 s during a later step: SUCCESS unattended, one FINISHED MLflow run, each step once, every stored value intact, nothing missing from the run's log; the webserver and daemon answer afterwards"""
    # The broker and object store ran apart (with a 10 s case each) until the suite needed the minutes;
    # together with PostgreSQL every retry path is taken in one run (RELIABILITY.md keeps those rows).
    server = scaleout.postgres.tcp_server
    assert server is not None
    # PostgreSQL with the broker: the running step keeps its lease (a row whose heartbeat it moves again once
    # PostgreSQL answers) while the broker hands that step out again; with a session lock, which the restart
    # released, a second worker ran it (onnx_model started twice, in CI).
    services = [server, scaleout.broker, scaleout.store]

    def stop_all() -> None:
        for service in services:
            (service.stop_server if service is server else service.stop)()

    def start_all() -> None:  # side by side, as after a site's power blip (RabbitMQ alone takes ~10 s)
        starting = [threading.Thread(target=service.start) for service in services]
        for thread in starting:
            thread.start()
        for thread in starting:
            thread.join()

    run_id = launch_job(scaleout.topology.web_port, run_config={**CELERY, **SLOW_MODEL})
    away = _outages_mid_run(instance, run_id, [(server.stop_server, server.start, 10), (stop_all, start_all, 45)])
    _assert_rode_it_out(scaleout, instance, run_id, time.time())
    stored = stored_values(scaleout, run_id)
    assert stored["model"][2].n_estimators == 2000 and len(stored["splits"][2].X_test) == 30
    outcome.note(
        f"PostgreSQL away {away[0]:.0f} s, then PostgreSQL, broker and object store away {away[1]:.0f} s: SUCCESS "
        "without a retry, one FINISHED MLflow run, each step started and succeeded once, values intact; the "
        "webserver answered at once, every daemon beat again, the sensors ticked"
    )


def test_postgres_then_the_mlflow_server_stopped_mid_run_on_the_multiprocess_executor(scaleout, instance, outcome):
    """On the multiprocess executor (PostgreSQL storage): PostgreSQL stopped 45 s mid-step, then the MLflow server stopped 10 s and restarted during a later step, under the default limit: SUCCESS unattended, one FINISHED MLflow run, each step once"""
    run_config = {**SLOW_MODEL, "execution": {"config": {"multiprocess": {}}}}
    run_id = launch_job(scaleout.topology.web_port, run_config=run_config)
    server = scaleout.postgres.tcp_server
    assert server is not None
    tracking = (scaleout.topology.stop_mlflow, scaleout.topology.start_mlflow, 10)
    away = _outages_mid_run(instance, run_id, [(server.stop_server, server.start, 45), tracking])
    _assert_rode_it_out(scaleout, instance, run_id, time.time())
    messages = [entry.message or "" for entry in instance.all_logs(run_id)]
    assert any(m.startswith(LOCAL_EXECUTORS["multiprocess"]) for m in messages)
    outcome.note(
        f"multiprocess: PostgreSQL away {away[0]:.0f} s, then the MLflow server {away[1]:.0f} s: SUCCESS without a "
        "retry, one FINISHED MLflow run, each step once"
    )


TERMINAL_TREES = 800  # its run and re-execution each train and convert it: a smaller forest, as fast a failure


def test_postgres_past_a_short_limit_from_a_terminal(scaleout, instance, tmp_path, outcome):
    """PostgreSQL stopped for 25 s mid-step of a terminal run (`dagster job execute`, in-process) on a short limit (5 s): the run fails naming PostgreSQL (recorded once it answers again, never its password), its MLflow run ends FAILED; `iris-runs reexecute` finishes the same MLflow run"""
    config = tmp_path / "model.yaml"  # trains for a few seconds: the outage starts mid-step, and fails it
    config.write_text(yaml.safe_dump({"ops": {"model": {"config": {"n_estimators": TERMINAL_TREES, "n_jobs": 1}}}}))
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
    assert_recorded_once(scaleout, instance, run_id, mlflow_run, [run_id, resumed], n_estimators=TERMINAL_TREES)
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
