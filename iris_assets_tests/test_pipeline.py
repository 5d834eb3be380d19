"""The whole graph, through every way a user starts it, against real stores."""

import json

import dagster as dg
import pytest
import yaml

from iris_assets import defs, groups
from iris_assets.config_errors import ConfigRefused
from iris_assets.tracking.config import MODEL_TRAINING_VIEW
from iris_assets.tracking.tags import DAGSTER_RUN_ID_TAG, DAGSTER_RUN_IDS_TAG, JOB_NAME_TAG
from iris_assets_tests.mlflow_checks import (
    artifact_paths,
    assert_complete_iris_run,
    only_run,
    runs_of,
)
from iris_harness.environment import REPO_ROOT, run_cli
from iris_harness.runs import iris_pipeline

PIPELINE = dg.AssetSelection.groups(groups.PIPELINE)
PIPELINE_ASSETS = PIPELINE.resolve(defs.resolve_asset_graph())


def test_job_in_process_python_api(instance, tracking_uri):
    result = dg.execute_job(dg.reconstructable(iris_pipeline), instance=instance)
    assert result.success
    run = only_run(tracking_uri)
    assert_complete_iris_run(tracking_uri, run)
    assert run.data.tags[DAGSTER_RUN_ID_TAG] == result.run_id
    assert run.data.tags[DAGSTER_RUN_IDS_TAG] == result.run_id
    assert run.data.tags[JOB_NAME_TAG] == "iris_pipeline"

    # Every materialisation points at that run.
    for key in PIPELINE_ASSETS:
        event = instance.get_latest_materialization_event(key)
        metadata = event.asset_materialization.metadata
        assert metadata["mlflow_run_id"].value == run.info.run_id
        assert metadata["mlflow_run_url"].value.endswith(f"/runs/{run.info.run_id}{MODEL_TRAINING_VIEW}")
    metrics = instance.get_latest_materialization_event(dg.AssetKey("metrics"))
    assert metrics.asset_materialization.metadata["accuracy"].value == pytest.approx(run.data.metrics["accuracy"])
    # The model's metadata holds its params, as logged to MLflow (which keeps them as text).
    params = instance.get_latest_materialization_event(dg.AssetKey("model")).asset_materialization.metadata["params"]
    assert params.value == {"family": "random_forest", "n_estimators": 100, "max_depth": 10, "random_state": 42}
    assert {name: str(value) for name, value in params.value.items()} == {
        name: run.data.params[name] for name in params.value
    }
    raw = instance.get_latest_materialization_event(dg.AssetKey("raw_data"))
    assert raw.asset_materialization.metadata["dagster/row_count"].value == 150


def test_dagster_job_execute_cli(dagster_home, tracking_uri):
    run_cli("dagster", "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline")
    # After the CLI has exited (it re-initialises resources after the run ends, which
    # must not reopen the MLflow run), the one run is FINISHED and complete.
    run = assert_complete_iris_run(tracking_uri, only_run(tracking_uri))
    assert run.data.tags[JOB_NAME_TAG] == "iris_pipeline"
    # The default stratified split and hyperparameters score 0.90 (1.00 without stratify).
    assert run.data.metrics["accuracy"] == pytest.approx(0.9)


def test_asset_materialize_cli_runs_the_implicit_asset_job(dagster_home, tracking_uri):
    """What "Materialize all" in the UI runs: the implicit asset job, which has no hooks."""
    run_cli("dagster", "asset", "materialize", "-m", "iris_assets", "--select", "group:iris")
    run = assert_complete_iris_run(tracking_uri, only_run(tracking_uri))
    assert run.data.tags[JOB_NAME_TAG] == "__ASSET_JOB"


@pytest.mark.slow  # a process per step: outside the quick lane
def test_multiprocess_executor_with_readme_config(dagster_home, tracking_uri, tmp_path):
    """One process per step, and the README's example config file."""
    config = yaml.safe_load((REPO_ROOT / "examples" / "small_forest.yaml").read_text())
    config["execution"] = {"config": {"multiprocess": {"max_concurrent": 2}}}
    config_file = tmp_path / "run_config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    run_cli("dagster", "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline", "-c", str(config_file))
    (dagster_run,) = dg.DagsterInstance.get().get_runs()
    workers = dg.DagsterInstance.get().all_logs(dagster_run.run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED)
    assert len(workers) == len(PIPELINE_ASSETS)  # a process per step
    assert_complete_iris_run(tracking_uri, only_run(tracking_uri), n_estimators=50, max_depth=3)


def test_a_terminal_run_prints_info_and_ends_with_one_summary_line(dagster_home, tracking_uri):
    """`dg launch`, as the README runs it: no debug events, no warning, the summary last."""
    result = run_cli("dg", "launch", "--job", "iris_pipeline", cwd=REPO_ROOT)
    run = assert_complete_iris_run(tracking_uri, only_run(tracking_uri))
    lines = result.stderr.strip().splitlines()
    assert " - DEBUG - " not in result.stderr and "Warning" not in result.stderr, result.stderr[-3000:]
    summary = f"MLflow run {run.info.run_id} FINISHED: accuracy 0.900, precision 0.902, recall 0.900, f1_score 0.900"
    assert summary in lines[-1], lines[-1]
    assert "; registry: iris-classifier/1 champion" in lines[-1]
    assert sum(summary in line for line in lines) == 1
    assert len(lines) < 10, result.stderr


# The refusals of the issue (#29): (the model's config, what the one line must say). The first and
# the last two are the model's own validation (pydantic), the others Dagster's config schema.
REFUSED_MODEL_CONFIGS = {
    "n_estimators -3": (
        {"n_estimators": -3},
        "model: n_estimators=-3 is not allowed: expected an integer greater than 0 and at most 10000",
    ),
    "an unknown family": (
        {"family": "random_tree"},
        "model: family='random_tree' is not allowed: expected one of random_forest, svm, logistic_regression, "
        "mlp, hist_gradient_boosting",
    ),
    "n_estimators abc": ({"n_estimators": "abc"}, "model: n_estimators='abc' is not allowed: expected an integer"),
    "svm C -1": (
        {"family": "svm", "C": -1},
        "model: C=-1 is not allowed: expected a number greater than 0 and at most 1000000",
    ),
    "learning_rate 0": (
        {"family": "hist_gradient_boosting", "learning_rate": 0},
        "model: learning_rate=0 is not allowed: expected a number greater than 0 and at most 1",
    ),
}
TERMINAL_COMMANDS = {
    "dg launch": ["dg", "launch", "--job", "iris_pipeline", "-c"],
    "dagster job execute": ["dagster", "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline", "-c"],
}


def _printed_lines(result) -> list[str]:
    """What a command printed, stdout and stderr, without Dagster's supersession warning for `dagster job
    execute` (the README announces it; it is printed before the project is loaded: two lines, the
    warning and the source line Python's warnings module shows under it)."""
    lines, skip = [], False
    for line in (result.stdout + result.stderr).splitlines():
        if "SupersessionWarning" in line:
            skip = True
            continue
        if skip and line.startswith("  "):
            skip = False
            continue
        skip = False
        if line.strip():
            lines.append(line)
    return lines


@pytest.mark.parametrize("command", TERMINAL_COMMANDS)
@pytest.mark.parametrize("case", REFUSED_MODEL_CONFIGS)
def test_a_refused_value_in_a_terminal_run_is_one_line_and_nothing_runs(
    case, command, instance, tracking_uri, tmp_path
):
    config, line = REFUSED_MODEL_CONFIGS[case]
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(yaml.safe_dump({"ops": {"model": {"config": config}}}))
    result = run_cli(*TERMINAL_COMMANDS[command], str(config_file), expect_ok=False, cwd=REPO_ROOT)
    assert result.returncode == 2, (result.stdout + result.stderr)[-3000:]
    assert _printed_lines(result) == [f"{command}: {line}"], result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    # Refused before a run exists: no Dagster run (so no asset marked failed), no MLflow run.
    assert instance.get_runs() == []
    assert runs_of(tracking_uri) == []


def test_the_readme_shows_the_refusal_its_command_prints():
    """README step 2 shows the line `dg launch` prints for n_estimators -3 (compared above)."""
    assert f"\ndg launch: {REFUSED_MODEL_CONFIGS['n_estimators -3'][1]}\n" in (REPO_ROOT / "README.md").read_text()


@pytest.mark.parametrize("case", REFUSED_MODEL_CONFIGS)
def test_a_refused_value_fails_a_python_run_before_its_first_step(case, instance, tracking_uri):
    """`dg.execute_job` with the job's own executor (what the Launchpad, schedules, sensors and sweep
    trials run through): Dagster's schema refuses before the run; the model's own validation fails the
    run before any step, in one line, with no MLflow run and no automatic retry."""
    config, line = REFUSED_MODEL_CONFIGS[case]
    run_config = {"ops": {"model": {"config": config}}}
    try:
        result = dg.execute_job(
            dg.reconstructable(iris_pipeline), instance=instance, run_config=run_config, raise_on_error=False
        )
    except dg.DagsterInvalidConfigError as error:  # Dagster's own schema, before a run exists
        from iris_assets.config_errors import dagster_refusal

        assert dagster_refusal(error, defs.resolve_job_def("iris_pipeline")) == line
        assert instance.get_runs() == []
    else:
        assert not result.success
        events = instance.all_logs(result.run_id)
        kinds = {event.dagster_event.event_type for event in events if event.dagster_event}
        assert dg.DagsterEventType.STEP_START not in kinds and dg.DagsterEventType.STEP_FAILURE not in kinds
        (failure,) = [e for e in events if e.dagster_event and e.dagster_event.is_run_failure]
        error = failure.dagster_event.event_specific_data.error
        assert error.cls_name == "ConfigRefused" and error.message.strip().endswith(line), error.message
        assert "\n" not in error.message.strip()
        assert instance.get_run_by_id(result.run_id).tags["dagster/max_retries"] == "0"
    assert runs_of(tracking_uri) == []


@pytest.mark.parametrize("start", ["execute_in_process", "materialize"])
@pytest.mark.parametrize("case", ["n_estimators -3", "svm C -1", "learning_rate 0"])
def test_a_refused_value_stops_a_run_started_from_a_definition_before_its_first_step(
    case, start, instance, tracking_uri
):
    """`JobDefinition.execute_in_process` and `dg.materialize` swap in Dagster's own executor: the model's
    validation refuses there in the `mlflow` resource's set-up, before any step, raising the one line."""
    config, line = REFUSED_MODEL_CONFIGS[case]
    run_config = {"ops": {"model": {"config": config}}}
    with pytest.raises(ConfigRefused) as refused:
        if start == "execute_in_process":
            defs.resolve_job_def("iris_pipeline").execute_in_process(run_config=run_config, instance=instance)
        else:
            dg.materialize(list(defs.assets), run_config=run_config, instance=instance, resources=defs.resources)
    assert str(refused.value) == line
    (run,) = instance.get_runs()
    kinds = {event.dagster_event.event_type for event in instance.all_logs(run.run_id) if event.dagster_event}
    assert dg.DagsterEventType.STEP_START not in kinds and dg.DagsterEventType.STEP_FAILURE not in kinds
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert runs_of(tracking_uri) == []


def test_a_config_error_that_escapes_a_terminal_command_is_one_line(dagster_home):
    """The exception hook of a terminal command: a Dagster config error no earlier check caught."""
    code = (
        "import sys; sys.argv = ['dg', 'launch', '--job', 'iris_pipeline']\n"
        "import dagster as dg\n"
        "from iris_assets import defs\n"
        "dg.validate_run_config(defs.resolve_job_def('iris_pipeline'), {'ops': {'trainer': {}}})\n"
    )
    result = run_cli("python", "-c", code, expect_ok=False)
    assert result.returncode == 2
    (line,) = _printed_lines(result)
    assert line.startswith("dg launch: ops: trainer is not a step of this job: its steps are ") and "model" in line, (
        line
    )


def test_a_bad_setting_stops_a_terminal_run_in_one_line(dagster_home, tracking_uri, monkeypatch):
    monkeypatch.setenv("IRIS_MIN_ACCURACY", "abc")
    result = run_cli("dg", "launch", "--job", "iris_pipeline", expect_ok=False, cwd=REPO_ROOT)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "dg launch: $IRIS_MIN_ACCURACY='abc' is not allowed: expected a number from 0.0 to 1.0"
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert runs_of(tracking_uri) == []


def test_two_materialisations_in_one_process_get_two_runs(instance, tracking_uri):
    """Stock dagster-mlflow shares MLflow's global active run between them."""
    first = dg.materialize(
        defs.assets, resources={"mlflow": defs.resources["mlflow"]}, instance=instance, selection=PIPELINE
    )
    second = dg.materialize(
        defs.assets, resources={"mlflow": defs.resources["mlflow"]}, instance=instance, selection=PIPELINE
    )
    assert first.success and second.success
    runs = runs_of(tracking_uri)
    assert len(runs) == 2
    assert {r.data.tags[DAGSTER_RUN_ID_TAG] for r in runs} == {first.run_id, second.run_id}
    for run in runs:
        assert_complete_iris_run(tracking_uri, run)


def test_step_failure_then_reexecution_from_failure_continues_the_run(instance, tracking_uri):
    # parity_atol 0 makes the ONNX check fail: float32 ONNX vs float64 scikit-learn differ
    # by ~1e-7, so this is a real mismatch, found by the real check.
    strict = {"ops": {"onnx_model": {"config": {"parity_atol": 0.0}}}}
    failed = dg.execute_job(
        dg.reconstructable(iris_pipeline), instance=instance, run_config=strict, raise_on_error=False
    )
    assert not failed.success
    failure = failed.get_step_failure_events()[0]
    assert failure.step_key == "onnx_model"
    assert "parity_atol=0.0" in failure.step_failure_data.error.to_string()

    run = only_run(tracking_uri)
    assert run.info.status == "FAILED"
    # What the completed steps logged is kept.
    assert "accuracy" in run.data.metrics
    assert "onnx_model/iris_random_forest.onnx" not in artifact_paths(tracking_uri, run.info.run_id)

    resumed = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        run_config={},
        reexecution_options=dg.ReexecutionOptions.from_failure(failed.run_id, instance),
    )
    assert resumed.success
    assert {e.step_key for e in resumed.get_step_success_events()} == {
        "onnx_model",
        "registered_model",
    }
    run = only_run(tracking_uri)  # the same run, no second one
    assert_complete_iris_run(tracking_uri, run)
    assert run.data.tags[DAGSTER_RUN_IDS_TAG].split() == [failed.run_id, resumed.run_id]
    assert run.data.tags["dagster_parent_run_id"] == failed.run_id


def test_reexecution_of_all_steps_gets_a_new_run(instance, tracking_uri):
    first = dg.execute_job(dg.reconstructable(iris_pipeline), instance=instance)
    again = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        reexecution_options=dg.ReexecutionOptions(parent_run_id=first.run_id),
    )
    assert first.success and again.success
    runs = {r.data.tags[DAGSTER_RUN_ID_TAG]: r for r in runs_of(tracking_uri)}
    assert set(runs) == {first.run_id, again.run_id}
    assert runs[again.run_id].data.tags["dagster_parent_run_id"] == first.run_id
    assert runs[again.run_id].data.tags["dagster_root_run_id"] == first.run_id


def test_partial_materialisation_records_upstream_runs(instance, tracking_uri):
    full = dg.materialize(defs.assets, resources=defs.resources, instance=instance, selection=PIPELINE)
    assert full.success
    (first,) = runs_of(tracking_uri)
    partial = dg.materialize(defs.assets, resources=defs.resources, instance=instance, selection=["metrics"])
    assert partial.success
    (second,) = [r for r in runs_of(tracking_uri) if r.info.run_id != first.info.run_id]
    assert second.info.status == "FINISHED"
    assert set(second.data.metrics) == {"accuracy", "precision", "recall", "f1_score"}
    tags = second.data.tags
    for upstream in ("model", "splits"):
        assert tags[f"upstream.{upstream}.mlflow_run_id"] == first.info.run_id
        assert tags[f"upstream.{upstream}.dagster_run_id"] == full.run_id


@pytest.mark.parametrize(
    ("ops_config", "named"),
    [
        ({"model": {"config": {"n_estimators": 0}}}, "n_estimators"),
        ({"model": {"config": {"max_depth": -3}}}, "max_depth"),
        ({"splits": {"config": {"test_size": 1.0}}}, "test_size"),
    ],
)
def test_out_of_range_config_is_refused_naming_the_field(instance, tracking_uri, ops_config, named):
    """Refused before the run's first step (config_errors): no step runs, no MLflow run is created."""
    result = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        run_config={"ops": ops_config},
        raise_on_error=False,
    )
    assert not result.success
    assert result.get_step_failure_events() == []
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    message = failure.event_specific_data.error.message
    assert f"{named}=" in message and "is not allowed: expected" in message, message
    assert runs_of(tracking_uri) == []


def test_mistyped_config_is_refused_before_anything_runs(dagster_home, tracking_uri, tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(json.dumps({"ops": {"model": {"config": {"n_estimators": "many"}}}}))
    result = run_cli(
        "dagster",
        "job",
        "execute",
        "-m",
        "iris_assets",
        "-j",
        "iris_pipeline",
        "-c",
        str(config),
        expect_ok=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "n_estimators" in output and "many" in output, output[-3000:]
    assert runs_of(tracking_uri) == []
