"""Faults and concurrency on the embedded defaults: `dagster job execute`, a sqlite Dagster
instance and the sqlite MLflow store in the state folder, no daemon, no server."""

import os
import signal
import sqlite3

import dagster as dg
from mlflow import MlflowClient

from iris_assets import settings
from iris_assets.tracking.tags import DAGSTER_RUN_IDS_TAG
from iris_assets_tests.mlflow_checks import artifact_paths, assert_complete_iris_run, only_run, runs_of
from iris_assets_tests.reliability.conftest import repeat
from iris_harness.runs import iris_pipeline, start_job_execute, wait_for_step_start


@repeat()
def test_step_process_killed_then_reexecuted_from_failure(instance, tracking_uri, tmp_path, outcome, repetition):
    """Step process SIGKILLed mid-step (multiprocess executor, CLI): the run worker ends the MLflow run FAILED, re-execution finishes it"""
    config = {
        "execution": {"config": {"multiprocess": {"max_concurrent": 1}}},
        "ops": {"model": {"config": {"n_estimators": 300}}},
        # The store in run config too: re-executions inherit it, whatever process runs them.
        "resources": {"mlflow": {"config": {"mlflow_tracking_uri": tracking_uri}}},
    }
    process = start_job_execute(config, tmp_path, "run")
    try:
        step_start = wait_for_step_start(instance, "model")
        os.kill(step_start.dagster_event.pid, signal.SIGKILL)
        process.wait(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    run = instance.get_run_by_id(step_start.run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    failure = "\n".join(
        e.message + e.dagster_event.step_failure_data.error.to_string()
        for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    )
    # Dagster's own words for a dead step process (it does not say which signal).
    assert 'step "model" failed' in failure and "ChildProcessCrashException" in failure, failure
    mlflow_run = only_run(tracking_uri)
    assert mlflow_run.info.status == "FAILED"  # no daemon needed: the run worker ended it
    assert mlflow_run.data.params["test_size"] == "0.2"  # what completed steps logged is kept
    assert not {"confusion_matrix.json", "onnx_model/iris_random_forest.onnx"} & set(
        artifact_paths(tracking_uri, mlflow_run.info.run_id)
    )

    result = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(run.run_id, instance),
    )
    assert result.success
    finished = only_run(tracking_uri)
    assert finished.info.run_id == mlflow_run.info.run_id
    assert finished.data.tags[DAGSTER_RUN_IDS_TAG].split() == [run.run_id, result.run_id]
    assert_complete_iris_run(tracking_uri, finished, n_estimators=300)
    outcome.note(
        "Dagster run FAILURE naming the step; MLflow run FAILED at once; re-execution: same run FINISHED, every artifact once"
    )


@repeat()
def test_four_cli_runs_at_once_on_the_embedded_store(dagster_home, tmp_path, monkeypatch, outcome, repetition):
    """4 `dagster job execute` at once on the default sqlite MLflow store (new): 4 separate, complete runs"""
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the embedded default, created by the runs themselves
    tracking_uri = settings.current().embedded_tracking_uri
    trees = [10, 20, 30, 40]
    processes = [
        start_job_execute({"ops": {"model": {"config": {"n_estimators": n}}}}, tmp_path, f"run{n}") for n in trees
    ]
    codes = [p.wait(timeout=600) for p in processes]
    logs = {n: (tmp_path / f"run{n}.log").read_text(errors="replace")[-2000:] for n in trees}
    assert codes == [0] * 4, logs

    runs = runs_of(tracking_uri)
    assert sorted(int(r.data.params["n_estimators"]) for r in runs) == trees
    for run in runs:
        assert len(run.data.tags[DAGSTER_RUN_IDS_TAG].split()) == 1
        assert_complete_iris_run(tracking_uri, run, n_estimators=int(run.data.params["n_estimators"]))
    database = tracking_uri.removeprefix("sqlite:///")
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    versions = MlflowClient(tracking_uri).search_model_versions("name = 'iris-classifier'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]
    champions = [
        v for v in versions if "champion" in MlflowClient(tracking_uri).get_model_version(v.name, v.version).aliases
    ]
    assert len(champions) == 1
    outcome.note(
        "4 exit 0; 4 FINISHED runs with their own params and all artifacts; sqlite integrity ok; 4 versions, 1 champion"
    )
