"""Schedules, sensors, asset checks and the run-status sensors that close MLflow runs."""

import datetime
import json
import os
import signal

import dagster as dg
import pytest

from iris_assets.automation.schedules import SCHEDULED_TIME_TAG, iris_retraining
from iris_assets.automation.sensors import LANDING_DIGEST_TAG, LANDING_FILE_TAG, new_iris_data
from iris_assets.data.schema import CSV_COLUMNS, load_bundled_iris
from iris_assets.project_mlflow import IrisMlflowRun
from iris_assets.tracking.sensors import close_mlflow_run_on_cancel, close_mlflow_run_on_failure
from iris_assets.tracking.tags import DAGSTER_RUN_URL_TAG
from iris_assets_tests.mlflow_checks import artifact_paths, only_run, runs_of
from iris_harness.processes import wait_until
from iris_harness.runs import iris_pipeline, start_job_execute, wait_for_step_start


def write_landing_csv(folder, name: str, rows: slice) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    load_bundled_iris().frame[CSV_COLUMNS].iloc[rows].to_csv(path, index=False)
    return str(path.resolve())


# -- schedule -------------------------------------------------------------------------------


def test_schedule_is_stopped_by_default_and_tags_its_runs(instance, tracking_uri):
    assert iris_retraining.default_status == dg.DefaultScheduleStatus.STOPPED
    tick = datetime.datetime(2026, 11, 27, 3, 0, tzinfo=datetime.timezone.utc)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    (request,) = iris_retraining.evaluate_tick(context).run_requests
    assert request.run_key == tick.isoformat()
    # What the daemon does with the request: a run of the job with the request's tags
    # plus the schedule's name.
    tags = {**request.tags, "dagster/schedule_name": iris_retraining.name}
    result = dg.execute_job(dg.reconstructable(iris_pipeline), instance=instance, tags=tags)
    assert result.success
    run = only_run(tracking_uri)
    assert run.info.status == "FINISHED"
    assert run.data.tags["dagster/schedule_name"] == "iris_retraining"
    assert run.data.tags[SCHEDULED_TIME_TAG] == "2026-11-27T03:00:00+00:00"
    assert run.data.tags[DAGSTER_RUN_URL_TAG] == f"http://127.0.0.1:3000/runs/{result.run_id}"


# -- new-data sensor ------------------------------------------------------------------------


def test_new_data_sensor_starts_one_run_per_new_valid_file(tmp_path, monkeypatch, instance):
    landing = tmp_path / "landing"
    monkeypatch.setenv("IRIS_LANDING_DIR", str(landing))
    first = write_landing_csv(landing, "a.csv", slice(0, 150, 2))
    second = write_landing_csv(landing, "b.csv", slice(1, 150, 2))
    (landing / "broken.csv").write_text("sepal_length,species\n1.0,setosa\n")

    result = new_iris_data(dg.build_sensor_context(instance=instance))
    assert [r.tags[LANDING_FILE_TAG] for r in result.run_requests] == [first, second]
    for request in result.run_requests:
        assert request.run_config["ops"]["raw_data"]["config"]["csv_path"] == request.tags[LANDING_FILE_TAG]
        assert request.run_key == request.tags[LANDING_DIGEST_TAG]
    assert len({r.run_key for r in result.run_requests}) == 2

    # Next tick: the invalid file is reported by name, with its problem; no run.
    result = new_iris_data(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert result.run_requests == []
    assert "broken.csv" in result.skip_reason.skip_message
    assert "missing ['sepal_width', 'petal_length', 'petal_width']" in result.skip_reason.skip_message

    # And then nothing more, until a file changes.
    quiet = new_iris_data(dg.build_sensor_context(instance=instance, cursor=result.cursor))
    assert quiet.run_requests == [] and "no new CSV file" in quiet.skip_reason.skip_message
    write_landing_csv(landing, "a.csv", slice(0, 150, 3))
    changed = new_iris_data(dg.build_sensor_context(instance=instance, cursor=quiet.cursor))
    assert [r.tags[LANDING_FILE_TAG] for r in changed.run_requests] == [first]


def test_a_run_requested_by_the_sensor_trains_on_its_file(tmp_path, monkeypatch, instance, tracking_uri):
    landing = tmp_path / "landing"
    monkeypatch.setenv("IRIS_LANDING_DIR", str(landing))
    write_landing_csv(landing, "half.csv", slice(0, 150, 2))  # 75 rows
    (request,) = new_iris_data(dg.build_sensor_context(instance=instance)).run_requests
    result = dg.execute_job(
        dg.reconstructable(iris_pipeline), instance=instance, run_config=request.run_config, tags=request.tags
    )
    assert result.success
    run = only_run(tracking_uri)
    assert run.data.tags[LANDING_FILE_TAG] == request.tags[LANDING_FILE_TAG]
    assert run.data.tags[LANDING_DIGEST_TAG] == request.run_key
    confusion = json.loads(open(only_run_artifact(tracking_uri, run.info.run_id, "confusion_matrix.json")).read())
    assert sum(map(sum, confusion["matrix"])) == 15  # 20% of 75 rows


def only_run_artifact(tracking_uri, run_id, path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri).download_artifacts(run_id, path)


# -- asset checks -----------------------------------------------------------------------------


def test_checks_and_ui_metadata(instance, tracking_uri, monkeypatch):
    monkeypatch.setenv("DAGSTER_UI_URL", "http://127.0.0.1:3333/")
    result = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        run_config={"resources": {"mlflow": {"config": {"ui_url": "http://127.0.0.1:5555"}}}},
    )
    assert result.success
    evaluations = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    }
    assert evaluations == {
        "raw_data_schema": True,
        "raw_data_no_missing_values": True,
        "raw_data_value_ranges": True,
        "raw_data_class_balance": True,
        "quality_gate": True,
        "parity": True,
    }
    run = only_run(tracking_uri)
    assert run.data.tags["check.quality_gate"] == "passed"
    assert run.data.tags["check.onnx_parity"] == "passed"
    assert run.data.metrics["check.quality_gate.accuracy"] == pytest.approx(0.9)
    assert run.data.metrics["check.quality_gate.min_accuracy"] == 0.85

    # What the Dagster UI shows, and the link back from MLflow.
    def metadata(asset):
        return instance.get_latest_materialization_event(dg.AssetKey(asset)).asset_materialization.metadata

    url = f"http://127.0.0.1:5555/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning"
    for asset in ("raw_data", "splits", "model", "metrics", "onnx_model"):
        assert metadata(asset)["mlflow_run_url"] == dg.MetadataValue.url(url)
    scores = metadata("metrics")
    for name in ("accuracy", "precision", "recall", "f1_score"):
        assert isinstance(scores[name], dg.FloatMetadataValue)
    table = scores["confusion_matrix"].value
    assert table.splitlines()[0] == "| actual \\ predicted | setosa | versicolor | virginica |"
    assert "| setosa | 10 | 0 | 0 |" in table
    assert metadata("raw_data")["class_balance"].value == {"setosa": 50, "versicolor": 50, "virginica": 50}
    assert metadata("splits")["test_rows"].value == 30
    assert run.data.tags[DAGSTER_RUN_URL_TAG] == f"http://127.0.0.1:3333/runs/{result.run_id}"


def test_quality_gate_blocks_packaging(instance, tracking_uri, monkeypatch):
    monkeypatch.setenv("IRIS_MIN_ACCURACY", "0.95")  # the environment supplies the default; the model scores 0.90
    result = dg.execute_job(dg.reconstructable(iris_pipeline), instance=instance, raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    assert failure.step_key == "model"  # the gate runs in the model's step, and fails it
    gate = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        and e.asset_check_evaluation_data.check_name == "quality_gate"
    ]
    assert [g.passed for g in gate] == [False]
    assert instance.get_latest_materialization_event(dg.AssetKey("onnx_model")) is None
    run = only_run(tracking_uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["check.quality_gate"] == "failed"
    assert run.data.metrics["check.quality_gate.min_accuracy"] == 0.95
    assert "onnx_model/iris_random_forest.onnx" not in artifact_paths(tracking_uri, run.info.run_id)


# -- run-status sensors: runs that no in-run code could end ------------------------------------


def _sensor_context(instance, run, event_type, sensor):
    (event,) = [e.dagster_event for e in instance.all_logs(run.run_id, of_type=event_type)]
    return dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"mlflow": IrisMlflowRun()},
    )


def test_canceled_run_is_closed_killed_by_the_sensor(instance, tracking_uri, tmp_path):
    process = start_job_execute({"execution": {"config": {"multiprocess": {"max_concurrent": 1}}}}, tmp_path, "run")
    try:
        run = instance.get_run_by_id(wait_for_step_start(instance, "model").run_id)
        wait_until(lambda: runs_of(tracking_uri), timeout=60, what="the MLflow run", interval=0.1)
        # What a cancel from the UI does with a run it cannot reach gracefully: mark it
        # canceling, stop its processes, mark it canceled.
        instance.report_run_canceling(run)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        instance.report_run_canceled(instance.get_run_by_id(run.run_id))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    run = instance.get_run_by_id(run.run_id)
    assert run.status == dg.DagsterRunStatus.CANCELED
    assert only_run(tracking_uri).info.status == "RUNNING"

    with _sensor_context(instance, run, dg.DagsterEventType.RUN_CANCELED, close_mlflow_run_on_cancel) as context:
        close_mlflow_run_on_cancel(context)
    assert only_run(tracking_uri).info.status == "KILLED"


def test_the_sensor_leaves_runs_in_progress_alone(instance, tracking_uri):
    """A failed run re-executed from failure: its MLflow run is in use again."""
    failed = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        run_config={"ops": {"onnx_model": {"config": {"parity_atol": 0.0}}}},
        raise_on_error=False,
    )
    run = only_run(tracking_uri)
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    client.update_run(run.info.run_id, status="RUNNING")  # as if a retry had just reopened it
    retry = instance.create_run_for_job(
        job_def=iris_pipeline(),
        tags={"dagster/is_resume_retry": "true"},
        parent_run_id=failed.run_id,
        root_run_id=failed.run_id,
    )
    client.set_tag(run.info.run_id, "dagster_run_ids", f"{failed.run_id} {retry.run_id}")
    failed_run = instance.get_run_by_id(failed.run_id)
    with _sensor_context(instance, failed_run, dg.DagsterEventType.RUN_FAILURE, close_mlflow_run_on_failure) as context:
        close_mlflow_run_on_failure(context)
    assert client.get_run(run.info.run_id).info.status == "RUNNING"


def test_the_sweep_ends_what_the_run_status_sensors_missed(instance, tracking_uri):
    """A failed and a canceled Dagster run whose MLflow runs are still RUNNING (the
    server was down when the run-status sensors fired): the sweep ends both, once."""
    from mlflow import MlflowClient

    from iris_assets.runs.sensors import close_orphaned_mlflow_runs

    client = MlflowClient(tracking_uri)
    failed = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        run_config={"ops": {"onnx_model": {"config": {"parity_atol": 0.0}}}},
        raise_on_error=False,
    )
    canceled = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        run_config={"ops": {"onnx_model": {"config": {"parity_atol": 0.0}}}},
        raise_on_error=False,
    )
    instance.report_run_canceled(instance.get_run_by_id(canceled.run_id))
    by_dagster_run = {r.data.tags["dagster_run_id"]: r.info.run_id for r in runs_of(tracking_uri)}
    for run_id in by_dagster_run.values():
        client.update_run(run_id, status="RUNNING")

    with dg.build_sensor_context(instance=instance, resources={"mlflow": IrisMlflowRun()}) as context:
        reason = close_orphaned_mlflow_runs(context)
        assert "ended 2" in reason.skip_message
        assert client.get_run(by_dagster_run[failed.run_id]).info.status == "FAILED"
        assert client.get_run(by_dagster_run[canceled.run_id]).info.status == "KILLED"
        assert "no MLflow run left RUNNING" in close_orphaned_mlflow_runs(context).skip_message
