"""MLflow as people write it — fluent calls, autologging, the seed's start_run(run_id=...) — lands in
the one bound run, in a Dagster project that is not this one (iris_assets_tests/other_project).

Each case failed before the binding put its run on MLflow's active-run stack: the fluent
calls went to a stray run in ``Default`` (left RUNNING, one per step process), the seed's
block ended the bound run early, dagster-mlflow's own scenario lost its experiment and tags.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading

import dagster as dg
import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from iris_harness.environment import BIN, REPO_ROOT

pytestmark = pytest.mark.slow  # CLI runs of another code location: outside the quick lane

OTHER = "other-project"
CHILD_RUN_NAME = "seed_child"


def _runs(tracking_uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=100) if found else []


def _other_project_cli(tmp_path, dagster_home: str, job: str, run_config: dict, *extra: str):
    """`dagster job execute` of the other project: a code location of its own, loaded as a user loads it."""
    config = tmp_path / f"{job}.yaml"
    config.write_text(yaml.safe_dump(run_config))
    return subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "iris_assets_tests.other_project", "-j", job, "-c", str(config)]
        + list(extra),
        cwd=REPO_ROOT, env={**os.environ, "DAGSTER_HOME": dagster_home},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _resource_config(tracking_uri: str, **more) -> dict:
    return {
        "resources": {"mlflow": {"config": {"experiment_name": OTHER, "mlflow_tracking_uri": tracking_uri, **more}}}
    }


EXECUTORS = {
    "in_process": {"execution": {"config": {"in_process": {}}}},
    # forked from a forkserver that imported the project once: step processes start in a moment
    "multiprocess": {
        "execution": {
            "config": {
                "multiprocess": {
                    "max_concurrent": 2,
                    "start_method": {"forkserver": {"preload_modules": ["iris_assets_tests.other_project"]}},
                }
            }
        }
    },
}


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_fluent_calls_autolog_and_the_seed_s_style_land_in_the_one_bound_run(
    tmp_path, dagster_home, tracking_uri, executor
):
    result = _other_project_cli(
        tmp_path, dagster_home, "fluent_assets", {**_resource_config(tracking_uri), **EXECUTORS[executor]}
    )
    assert result.returncode == 0, result.stderr[-6000:]
    assert _runs(tracking_uri, "Default") == []  # no stray run, in any step process
    runs = _runs(tracking_uri, OTHER)
    (bound,) = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    (child,) = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert bound.info.status == "FINISHED" and child.info.status == "FINISHED"
    params, metrics, tags = bound.data.params, bound.data.metrics, bound.data.tags
    # fluent calls of every step, graph-backed and multi-asset ones included
    for name in ("fluent_param", "fluent_params", "graph_step_one", "graph_step_two", "multi"):
        assert name in params, (name, params)
    assert {"fluent_metric", "fluent_metrics", "seed_accuracy"} <= set(metrics)
    assert tags["fluent_tag"] == tags["fluent_tags"] == "yes"
    # autologging: the estimator's params, its training scores, its model
    assert params["max_iter"] == "300" and "training_accuracy_score" in metrics
    client = MlflowClient(tracking_uri)
    # mlflow.sklearn.log_model called fluently, and autolog's model: logged models of the bound run
    models = client.search_logged_models(experiment_ids=[bound.info.experiment_id])
    assert {m.source_run_id for m in models} == {bound.info.run_id} and len(models) == 2
    assert "fluent_model" in {m.name for m in models}
    artifacts = {a.path for a in client.list_artifacts(bound.info.run_id, "fluent")}
    assert {
        "fluent/dict.json",
        "fluent/text.txt",
        "fluent/artifact.json",
        "fluent/more",
        "fluent/figure.png",
    } <= artifacts
    assert "fluent/table.json" in artifacts
    assert [d.dataset.name for d in bound.inputs.dataset_inputs] == ["fluent_input"]
    # start_run() without an id: a child of the bound run, beside it
    assert child.data.tags["mlflow.parentRunId"] == bound.info.run_id
    assert child.data.tags["mlflow.runName"] == CHILD_RUN_NAME and child.data.params == {"child_param": "c"}


@pytest.mark.parametrize("executor", list(EXECUTORS))
def test_a_partitioned_asset_is_one_run_per_dagster_run(tmp_path, dagster_home, tracking_uri, executor):
    for partition in ("p1", "p2"):
        result = _other_project_cli(
            tmp_path, dagster_home, "partitioned", {**_resource_config(tracking_uri), **EXECUTORS[executor]},
            "--tags", json.dumps({"dagster/partition": partition}),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-6000:]
    runs = _runs(tracking_uri, OTHER)
    assert sorted(run.data.params["partition"] for run in runs) == ["p1", "p2"]
    assert {run.data.tags["dagster/partition"] for run in runs} == {"p1", "p2"}
    assert {run.info.status for run in runs} == {"FINISHED"} and _runs(tracking_uri, "Default") == []


def test_fluent_logging_then_an_exception_ends_the_run_failed_after_the_process_exits(
    tmp_path, dagster_home, tracking_uri
):
    """MLflow's exit hook ends whatever run is active FINISHED; the bound run ends FAILED, as its Dagster run."""
    run_config = {**_resource_config(tracking_uri), "ops": {"fluent_logging": {"config": {"fail": True}}}}
    result = _other_project_cli(tmp_path, dagster_home, "fluent_assets", {**run_config, **EXECUTORS["in_process"]})
    assert result.returncode != 0 and "fails on purpose" in result.stderr
    (run,) = [r for r in _runs(tracking_uri, OTHER) if "mlflow.parentRunId" not in r.data.tags]
    assert run.info.status == "FAILED" and run.data.params["fluent_param"] == "1"
    assert _runs(tracking_uri, "Default") == []


def test_dagster_mlflow_s_own_two_op_scenario_with_the_resource_swapped(instance, tracking_uri):
    """Stock dagster-mlflow's behavioural test, with MlflowRun for mlflow_tracking: the run is in the
    configured experiment with the extra tag; its end_mlflow_on_run_finished hook changes nothing."""
    from iris_assets_tests.other_project.definitions import defs

    run_config = {
        "resources": {"mlflow": {"config": {"experiment_name": "my_experiment", "extra_tags": {"super": "experiment"}}}}
    }
    result = defs.resolve_job_def("two_ops").execute_in_process(run_config=run_config, instance=instance)
    assert result.success
    (run,) = _runs(tracking_uri, "my_experiment")
    assert run.info.status == "FINISHED" and run.data.tags["super"] == "experiment"
    assert run.data.params == {"alpha": "1", "beta": "two", "gamma": "2"} and run.data.metrics == {"value": 1.0}
    assert _runs(tracking_uri, "Default") == [] and mlflow.active_run() is None


def test_nothing_stays_active_after_a_materialisation(instance, tracking_uri):
    """In a notebook-like process: after dg.materialize returns nothing is active, MLflow's tracking URI
    is the process's again, and a second materialisation of the same assets gets its own run."""
    from iris_assets.tracking import MlflowRun
    from iris_assets_tests.other_project.definitions import fluent_logging

    uri_before = mlflow.get_tracking_uri()
    for _ in range(2):
        result = dg.materialize(
            [fluent_logging], instance=instance, resources={"mlflow": MlflowRun(experiment_name=OTHER)}
        )
        assert result.success
        assert mlflow.active_run() is None and mlflow.get_tracking_uri() == uri_before
    runs = _runs(tracking_uri, OTHER)
    assert len(runs) == 2 and {run.info.status for run in runs} == {"FINISHED"}
    assert _runs(tracking_uri, "Default") == []


def test_two_materialisations_in_two_threads_never_mix(instance, tracking_uri, tmp_path):
    """Two dg.materialize in two threads of one process: the second runs whole while the first's step is
    mid-way (its run active in its thread); each logs into its own run.

    The second starts once the first's step is logging: Dagster itself deadlocks when two runs of one
    process create their log managers at the same moment (logging.config.dictConfig against a handler
    the other run is emitting to), which is not the binding's to fix."""
    import time

    from iris_assets.tracking import MlflowRun
    from iris_assets_tests.other_project.definitions import who

    results: dict[str, bool] = {}
    release = tmp_path / "release"

    def materialise(name: str, wait_for=None) -> None:
        config = {"ops": {"who": {"config": {"name": name, "wait_for": wait_for}}}}
        results[name] = dg.materialize(
            [who], instance=instance, run_config=config, resources={"mlflow": MlflowRun(experiment_name=OTHER)}
        ).success

    first = threading.Thread(target=materialise, args=("first", str(release)))
    first.start()
    deadline = time.monotonic() + 120
    while not [run for run in _runs(tracking_uri, OTHER) if run.data.params.get("who") == "first"]:
        assert time.monotonic() < deadline and first.is_alive(), "the first materialisation never logged"
        time.sleep(0.1)
    second = threading.Thread(target=materialise, args=("second",))
    second.start()
    second.join(timeout=300)
    release.touch()
    first.join(timeout=300)
    assert results == {"first": True, "second": True}
    runs = _runs(tracking_uri, OTHER)
    assert sorted(run.data.params["who"] for run in runs) == ["first", "second"]
    assert {run.info.status for run in runs} == {"FINISHED"} and all(run.data.metrics == {"done": 1.0} for run in runs)
    assert _runs(tracking_uri, "Default") == [] and mlflow.active_run() is None


def test_a_run_name_and_a_parent_run_can_be_configured(instance, tracking_uri):
    from iris_assets.tracking import MlflowRun
    from iris_assets_tests.other_project.definitions import who

    client = MlflowClient(tracking_uri)
    parent = client.create_run(client.create_experiment(OTHER)).info.run_id
    resource = MlflowRun(experiment_name=OTHER, run_name="nightly", parent_run_id=parent)
    config = {"ops": {"who": {"config": {"name": "named"}}}}
    result = dg.materialize([who], instance=instance, run_config=config, resources={"mlflow": resource})
    assert result.success
    (run,) = [run for run in _runs(tracking_uri, OTHER) if run.info.run_id != parent]
    assert run.data.tags["mlflow.runName"] == f"nightly-{result.run_id[:8]}"
    assert run.data.tags["mlflow.parentRunId"] == parent


def test_the_binding_imports_nothing_else_of_the_project():
    """iris_assets/tracking/ can serve any Dagster project: it imports only itself (and libraries)."""
    imported = []
    for path in sorted((REPO_ROOT / "iris_assets" / "tracking").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            imported += [f"{path.name}: {name}" for name in names if name.split(".")[0] == "iris_assets"]
    outside = [line for line in imported if not line.split(": ")[1].startswith("iris_assets.tracking")]
    assert outside == [], outside
    # and a project that imports it loads nothing of this project's definitions
    probe = "import sys, iris_assets_tests.other_project; print(sorted(m for m in sys.modules if m.startswith('iris_assets.')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    modules = eval(loaded.stdout.strip().splitlines()[-1])  # noqa: S307 - our own probe's output
    assert [m for m in modules if not m.startswith("iris_assets.tracking")] == ["iris_assets.settings"], modules
