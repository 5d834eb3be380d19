"""The MLflow binding on its own: races, failures and statuses, on real stores."""

import os
import sqlite3
import subprocess
import sys

import dagster as dg
import pytest

from iris_assets.tracking import MlflowBindingError
from iris_assets.tracking.closing import SETTLED_METADATA_KEY, settle_after_steps
from iris_assets.tracking.election import announced_mlflow_runs
from iris_assets.tracking.tags import DAGSTER_RUN_ID_TAG
from iris_assets_tests.binding_graph import (
    ROOTS,
    multiprocess_config,
    parallel_roots,
    racing_roots_config,
    roots_config,
)
from iris_assets_tests.mlflow_checks import only_run, runs_of
from iris_harness.processes import wait_until


def _execute(instance, run_config: dict) -> "dg.JobExecutionResult":
    # The store goes in through resource config, not only the environment: pytest keeps
    # one forkserver for all tests, and its children carry the environment of the test
    # that started it.
    run_config = {
        "resources": {"mlflow": {"config": {"mlflow_tracking_uri": os.environ["MLFLOW_TRACKING_URI"]}}},
        **run_config,
    }
    return dg.execute_job(
        dg.reconstructable(parallel_roots), instance=instance, run_config=run_config, raise_on_error=False
    )


@pytest.mark.slow  # a race repeated until it is seen: outside the quick lane
def test_parallel_root_steps_converge_on_one_run(instance, tracking_uri, tmp_path):
    """10 runs in a row, 4 root steps each binding at the same moment: one run each.

    The steps meet at a barrier right before they bind; whether two of them then
    create candidates at once depends on scheduling, so the test goes on past 10
    runs (up to 30) until it has seen that happen, proving the election ran.
    """
    dagster_runs, contested = [], 0
    while len(dagster_runs) < 10 or (contested == 0 and len(dagster_runs) < 30):
        barrier = tmp_path / f"barrier{len(dagster_runs)}"
        result = _execute(instance, {**racing_roots_config(str(barrier)), **multiprocess_config()})
        assert result.success
        dagster_runs.append(result.run_id)
        contested += len(set(announced_mlflow_runs(instance, result.run_id))) > 1

    active = runs_of(tracking_uri)
    assert len(active) == len(dagster_runs)
    by_dagster_run = {run.data.tags[DAGSTER_RUN_ID_TAG]: run for run in active}
    assert set(by_dagster_run) == set(dagster_runs)
    for dagster_run_id, run in by_dagster_run.items():
        assert run.info.status == "FINISHED"
        assert set(run.data.metrics) == set(ROOTS)  # every step logged into the one run
        assert announced_mlflow_runs(instance, dagster_run_id)[0] == run.info.run_id
    # Every losing candidate was deleted; none is left behind, RUNNING or otherwise.
    losers = [r for r in runs_of(tracking_uri, deleted=True) if r.info.lifecycle_stage == "deleted"]
    candidates = sum(len(set(announced_mlflow_runs(instance, d))) for d in dagster_runs)
    assert len(losers) == candidates - len(dagster_runs)
    print(f"{contested} of {len(dagster_runs)} runs had concurrent candidates; {len(losers)} deleted")
    assert contested > 0


@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
@pytest.mark.parametrize("failing_step_finishes", ["first", "last"])
def test_any_failed_step_ends_the_run_failed(instance, tracking_uri, executor, failing_step_finishes):
    slow, fast = {"sleep_seconds": 1.5}, {}
    failing = {**(fast if failing_step_finishes == "first" else slow), "fail": True}
    succeeding = slow if failing_step_finishes == "first" else fast
    config = roots_config(root_a=failing, root_b=succeeding, root_c=succeeding, root_d=succeeding)
    if executor == "multiprocess":
        config.update(multiprocess_config())
    result = _execute(instance, config)
    assert not result.success
    assert {e.step_key for e in result.get_step_failure_events()} == {"root_a"}
    assert len(result.get_step_success_events()) == 3

    run = only_run(tracking_uri)
    assert run.info.status == "FAILED"
    assert run.info.end_time is not None
    assert set(run.data.metrics) == {"root_b", "root_c", "root_d"}  # what succeeded is kept


def test_successful_multiprocess_run_finishes(instance, tracking_uri):
    result = _execute(instance, {**multiprocess_config(max_concurrent=1)})
    assert result.success
    run = only_run(tracking_uri)
    assert run.info.status == "FINISHED"
    assert set(run.data.metrics) == set(ROOTS)
    # The last step process ended the run and said so once in the event log, so the run
    # worker had nothing left to settle (and never opened the MLflow store for it).
    settled = [
        entry.dagster_event.event_specific_data.metadata[SETTLED_METADATA_KEY].value
        for entry in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if SETTLED_METADATA_KEY in entry.dagster_event.event_specific_data.metadata
    ]
    assert settled == ["FINISHED"]
    assert settle_after_steps(instance, instance.get_run_by_id(result.run_id)) is None


def test_explicit_mlflow_run_id_is_used(instance, tracking_uri):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("existing")
    existing = client.create_run(experiment).info.run_id
    client.set_terminated(existing)
    result = _execute(
        instance,
        {"resources": {"mlflow": {"config": {"mlflow_run_id": existing, "mlflow_tracking_uri": tracking_uri}}}},
    )
    assert result.success
    run = client.get_run(existing)
    assert run.info.status == "FINISHED"
    assert set(run.data.metrics) == set(ROOTS)
    assert runs_of(tracking_uri) == []  # nothing created in the default experiment


def test_deleted_experiment_is_a_clear_error(instance, tracking_uri):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    client.delete_experiment(client.create_experiment("gone"))
    result = _execute(
        instance,
        {"resources": {"mlflow": {"config": {"experiment_name": "gone", "mlflow_tracking_uri": tracking_uri}}}},
    )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.to_string()
    assert MlflowBindingError.__name__ in message
    assert "'gone'" in message and "is deleted" in message and "restore" in message


def test_experiment_from_the_environment(instance, tracking_uri, monkeypatch):
    monkeypatch.setenv("IRIS_MLFLOW_EXPERIMENT", "iris-from-env")
    result = dg.execute_job(dg.reconstructable(parallel_roots), instance=instance)
    assert result.success
    assert runs_of(tracking_uri) == []  # nothing in the default experiment
    run = only_run(tracking_uri, experiment="iris-from-env")
    assert run.info.status == "FINISHED" and set(run.data.metrics) == set(ROOTS)


def test_embedded_store_in_the_state_folder_by_default(instance, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    result = dg.execute_job(dg.reconstructable(parallel_roots), instance=instance)
    assert result.success
    state = tmp_path / "state"  # IRIS_STATE_DIR, set by the isolated_env fixture
    run = only_run(f"sqlite:///{state / 'mlflow.db'}")
    assert run.info.status == "FINISHED"
    # Artifacts beside the database, not in whatever folder the process ran from.
    assert run.info.artifact_uri.startswith((state / "mlartifacts").as_uri())
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()


# One process opening the store: imports first, then waits for the others, then its first call.
FIRST_USE = """
import sys, time
from pathlib import Path
from iris_assets.tracking.store import mlflow_client
uri, gate = sys.argv[1], Path(sys.argv[2])
(gate / sys.argv[3]).touch()
while not (gate / "go").exists():
    time.sleep(0.005)
mlflow_client(uri).search_experiments()
"""


def test_a_new_embedded_store_opened_by_many_processes_at_once(tmp_path):
    """Steps and a daemon's sensors opening a brand-new sqlite store at the same moment all succeed,
    and the store has one schema version (MLflow's migrations raced before the first client was locked)"""
    database = tmp_path / "new" / "mlflow.db"
    database.parent.mkdir()
    gate = tmp_path / "gate"
    gate.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, f"sqlite:///{database}", str(gate), f"ready-{i}"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    wait_until(lambda: len(list(gate.glob("ready-*"))) == 6, timeout=120, what="six processes to import MLflow")
    (gate / "go").touch()
    errors = {i: process.communicate(timeout=120)[1][-1500:] for i, process in enumerate(processes)}
    assert [process.returncode for process in processes] == [0] * 6, errors
    with sqlite3.connect(database) as connection:
        assert len(connection.execute("SELECT version_num FROM alembic_version").fetchall()) == 1


def test_a_chain_of_retries_continues_its_first_mlflow_run(instance, tracking_uri):
    """Original (a step fails; the others logged) -> retry from failure that fails before its step
    binds -> re-execution from failure of that retry: one MLflow run, continued, FINISHED."""

    def execute(run_config: dict, parent_run_id: str) -> "dg.JobExecutionResult":
        return dg.execute_job(
            dg.reconstructable(parallel_roots),
            instance=instance,
            run_config={
                "resources": {"mlflow": {"config": {"mlflow_tracking_uri": os.environ["MLFLOW_TRACKING_URI"]}}},
                **run_config,
            },
            reexecution_options=dg.ReexecutionOptions.from_failure(parent_run_id, instance),
            raise_on_error=False,
        )

    failing = roots_config(root_a={"fail": True})
    original = _execute(instance, failing)
    assert not original.success
    (first,) = announced_mlflow_runs(instance, original.run_id)
    retry = execute(failing, original.run_id)  # root_a fails again, before it logs: binds nothing
    assert not retry.success and announced_mlflow_runs(instance, retry.run_id) == []
    resumed = execute(roots_config(root_a={"fail": False}), retry.run_id)
    assert resumed.success
    assert announced_mlflow_runs(instance, resumed.run_id) == [first]
    run = only_run(tracking_uri)  # one MLflow run for the whole chain
    assert run.info.run_id == first and run.info.status == "FINISHED"
    assert run.data.tags["dagster_run_ids"].split() == [original.run_id, resumed.run_id]
    assert set(run.data.metrics) == set(ROOTS)  # every root logged into it once
