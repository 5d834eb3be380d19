"""What the code location holds, and that every entry point loads the same thing cheaply."""

import json
import subprocess
import sys

import dagster as dg
import pytest

from iris_assets import defs
from iris_assets.tracking import MlflowRun
from iris_assets_tests.mlflow_checks import assert_complete_iris_run, only_run
from iris_harness.environment import BIN, REPO_ROOT

EXPECTED_GRAPH = {  # the pipeline (group "iris")
    "raw_data": set(),
    "splits": {"raw_data"},
    "model": {"splits"},
    "metrics": {"model", "splits"},
    "onnx_model": {"model", "splits"},
    "registered_model": {"metrics", "model", "splits", "onnx_model"},  # the champion is scored on the same split
}
# Sweeps are jobs of ops, not assets: the asset graph (what "Materialize all" on the global
# lineage launches) is the pipeline alone, unpartitioned, so one click is one run.
EXPECTED_SWEEP_JOBS = {"iris_sweep": None, "iris_trial": "iris_trials"}


def test_asset_graph_snapshot():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == set(EXPECTED_GRAPH)
    expected = {name: (upstream, None, "iris") for name, upstream in EXPECTED_GRAPH.items()}
    for name, (upstream, partitions, group) in expected.items():
        node = graph.get(dg.AssetKey(name))
        assert {parent.to_user_string() for parent in node.parent_keys} == upstream, name
        assert getattr(node.partitions_def, "name", None) == partitions, name
        assert node.group_name == group, name
        assert node.description, f"{name} has no description"
        assert node.kinds, f"{name} has no kinds"
    job = defs.resolve_job_def("iris_pipeline")
    assert {key.to_user_string() for key in job.asset_layer.executable_asset_keys} == set(EXPECTED_GRAPH)
    assert job.executor_def.name == "in_process_multiprocess_or_celery"
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert checks == {
        ("raw_data", "raw_data_schema"),
        ("raw_data", "raw_data_no_missing_values"),
        ("raw_data", "raw_data_value_ranges"),
        ("raw_data", "raw_data_class_balance"),
        ("model", "quality_gate"),
        ("onnx_model", "parity"),
    }
    assert graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey("model"), "quality_gate")).blocking
    for name, partitions in EXPECTED_SWEEP_JOBS.items():
        sweep_job = defs.resolve_job_def(name)
        assert getattr(sweep_job.partitions_def, "name", None) == partitions, name
        assert not sweep_job.asset_layer.executable_asset_keys, f"{name} materialises no asset"


def test_automation_snapshot():
    assert {s.name: s.default_status for s in defs.schedules} == {"iris_retraining": dg.DefaultScheduleStatus.STOPPED}
    assert {s.name for s in defs.sensors} == {
        "new_iris_data",
        "close_mlflow_run_on_failure",
        "close_mlflow_run_on_cancel",
        "close_orphaned_mlflow_runs",
        "close_dead_runs",
        "launch_sweep_trials",
    }


def test_hyperparameter_defaults_are_the_original_ones():
    config_fields = {
        name: defs.resolve_job_def("iris_pipeline").run_config_schema.config_type.fields["ops"].config_type.fields[name]
        for name in ("model", "splits", "onnx_model")
    }
    model_fields = config_fields["model"].config_type.fields["config"].config_type.fields
    defaults = {k: model_fields[k].default_value for k in model_fields if model_fields[k].default_provided}
    assert {k: defaults[k] for k in ("n_estimators", "max_depth", "random_state")} == {
        "n_estimators": 100,
        "max_depth": 10,
        "random_state": 42,
    }
    assert defaults["n_jobs"] == -1  # every core; the same forest whatever the number
    split_fields = config_fields["splits"].config_type.fields["config"].config_type.fields
    assert split_fields["test_size"].default_value == 0.2


def test_resource_accepts_dagster_mlflow_config_keys():
    """Run config written for dagster_mlflow.mlflow_tracking keeps working."""
    from dagster_mlflow.resources import CONFIG_SCHEMA

    assert set(CONFIG_SCHEMA) <= set(MlflowRun.model_fields)


def test_loading_definitions_imports_no_heavy_library():
    code = (
        "import sys, iris_assets; "
        "print(','.join(m for m in ('mlflow', 'sklearn', 'skl2onnx', 'onnxruntime', 'pandas') "
        "if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == ""


@pytest.mark.parametrize(
    "target",
    [[], ["-w", "workspace.yaml"], ["-m", "iris_assets"]],
    ids=["pyproject (dagster dev)", "workspace.yaml", "-m iris_assets"],
)
def test_every_entry_point_loads_the_code_location(target, dagster_home):
    result = subprocess.run(
        [str(BIN / "dagster"), "definitions", "validate", *target],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Validation successful for code location iris_assets" in result.stdout + result.stderr


# -- dg, the Dagster 1.13 project CLI ----------------------------------------------------------


def _dg(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dg"), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


def test_dg_check_and_list_defs(dagster_home):
    checked = _dg("check", "defs")
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = _dg("list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout)
    assert {a["asset_key"] for a in found["assets"]} == set(EXPECTED_GRAPH)
    assert {j["name"] for j in found["jobs"]} >= {"iris_pipeline", *EXPECTED_SWEEP_JOBS}


@pytest.mark.slow  # a whole CLI run: outside the quick lane
def test_dg_launch_materialises_the_whole_graph_as_one_mlflow_run(dagster_home, tracking_uri):
    launched = _dg("launch", "--assets", "*", timeout=600)  # every asset: the pipeline, one run
    assert launched.returncode == 0, (launched.stdout + launched.stderr)[-4000:]
    assert_complete_iris_run(tracking_uri, only_run(tracking_uri))
