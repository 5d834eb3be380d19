"""Hyperparameter sweeps: one run of ``iris_sweep`` (the parent MLflow run), one ``iris_trial`` run per
trial (a child each), started by the sensor ``launch_sweep_trials``.

One stack for the module, on the embedded stores: a sqlite Dagster home and a sqlite
MLflow store, with real dagster-webserver and dagster-daemon processes (the sensor daemon
starts the trials, the run queue runs them). The instance is brand new: the first test
finds that a sweep is refused before the pipeline has run, then runs the pipeline.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from mlflow import MlflowClient

from iris_assets.packaging.onnx import onnx_artifact
from iris_assets.registry.assets import RegistryConfig
from iris_assets.registry.promotion import COMPARED_WITH_TAG, PROMOTION_TAG
from iris_assets.runs.workers import RUN_WORKER_TAG
from iris_assets.settings import DEFAULT_REGISTERED_MODEL, DEFAULT_TUNING_EXPERIMENT
from iris_assets.tracking.election import announced_mlflow_runs
from iris_assets.training.assets import FAMILY_TAG
from iris_assets.training.families import DEFAULT_FAMILY
from iris_assets.tuning.jobs import SWEEP_JOB
from iris_assets.tuning.launch import (
    _WORKSPACE,
    REPOSITORY_SELECTOR,
    LaunchError,
    _graphql,
    job_selector,
    select_repository,
)
from iris_assets.tuning.ops import FAILED_TRIALS_TAG, NO_SPLITS, SWEEP_PARENT_TAG, SWEEP_TAG, TRIAL_TAG
from iris_assets.tuning.space import load, trial_params
from iris_assets_tests.mlflow_checks import artifact_paths
from iris_harness.environment import BIN, QUIET_ENV, REPO_ROOT
from iris_harness.graphql_client import launch_job, reexecute_from_failure, wait_for_run
from iris_harness.processes import Service, free_port, mlflow_server, wait_for_http, wait_until

pytestmark = pytest.mark.servers

SWEEP_FILE = REPO_ROOT / "examples" / "families.yaml"  # three families, six trials
SWEEP_WAIT = 600


@dataclass
class Stack:
    folder: Path
    port: int
    url: str
    tracking_uri: str
    instance: dg.DagsterInstance
    services: list[Service]
    env: dict

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.log()[-3000:]}" for s in self.services)

    def iris_sweep(self, *args: str, timeout: float = SWEEP_WAIT) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "iris-sweep"), *args, "--dagster-url", self.url],
            cwd=self.folder, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweeps")
    home = folder / "dagster_home"
    home.mkdir()
    # The deployment's queue and pools; no automatic run retry, so a killed trial stays failed.
    instance_yaml = {
        "concurrency": {"runs": {"max_concurrent_runs": 4}, "pools": {"default_limit": 1}},
        "run_monitoring": {"enabled": True, "poll_interval_seconds": 5},
        "telemetry": {"enabled": False},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = {
        **QUIET_ENV,
        "DAGSTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "IRIS_STATE_DIR": str(folder / "state"),
        "DAGSTER_UI_URL": url,
        "IRIS_ORPHAN_SWEEP_SECONDS": "3",  # close_dead_runs
    }
    # A new home is initialised once, before its processes race to create its tables.
    assert Service("init", ["iris-runs", "init"], folder, env).process.wait(120) == 0
    webserver = Service(
        "webserver", ["dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], folder, env
    )
    daemon = Service("daemon", ["dagster-daemon", "run", "-w", "workspace.yaml"], folder, env)
    services = [webserver, daemon]
    try:
        wait_for_http(f"{url}/server_info", webserver)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            yield Stack(folder, port, url, tracking_uri, instance, services, env)
    finally:
        for service in services:
            service.stop()


@pytest.fixture(scope="module")
def pipeline_ran(stack):
    """A sweep on the brand-new instance is refused in one line, creating nothing; then the pipeline
    runs once (splits to pin, a champion to beat)."""
    refused = stack.iris_sweep("launch", str(SWEEP_FILE), "--wait")
    assert refused.returncode == 2, refused
    assert refused.stderr == f"iris-sweep: error: {NO_SPLITS}\n"
    assert stack.instance.get_runs() == [] and _parents(stack) == []
    assert list(stack.instance.get_dynamic_partitions("iris_trials")) == []
    status = wait_for_run(stack.port, launch_job(stack.port), timeout=300)
    assert status == "SUCCESS", stack.logs()


# -- reading a sweep back -----------------------------------------------------------------------


def _client(stack: Stack) -> MlflowClient:
    return MlflowClient(stack.tracking_uri)


def _parents(stack: Stack) -> list:
    client = _client(stack)
    experiment = client.get_experiment_by_name(DEFAULT_TUNING_EXPERIMENT)
    if experiment is None:  # no sweep has started yet
        return []
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{SWEEP_PARENT_TAG}` = 'true'")


def _parent_of(stack: Stack, sweep_run_id: str):
    (announced,) = set(announced_mlflow_runs(stack.instance, sweep_run_id))
    return _client(stack).get_run(announced)


def _children(stack: Stack, parent_run_id: str) -> list:
    client = _client(stack)
    experiment = client.get_experiment_by_name(DEFAULT_TUNING_EXPERIMENT)
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=1000
    )


def _assert_settled_sweep(stack: Stack, sweep_run_id: str, keys: list[str]):
    """One FINISHED parent, a FINISHED child per trial, the summary, the best trial registered."""
    parent = _parent_of(stack, sweep_run_id)
    assert parent.info.status == "FINISHED", parent.info.status
    assert [p.info.run_id for p in _parents(stack) if p.data.tags["dagster_run_id"] == sweep_run_id] == [
        parent.info.run_id
    ]
    children = _children(stack, parent.info.run_id)
    by_key = {child.data.tags[TRIAL_TAG]: child for child in children}
    assert sorted(by_key) == sorted(keys) and len(children) == len(keys), [c.data.tags for c in children]
    digest = parent.data.tags["evaluation_digest"]
    for key, child in by_key.items():
        assert child.info.status == "FINISHED", (key, child.info.status)
        assert child.data.tags["mlflow.runName"] == key
        assert {name: child.data.params[name] for name in trial_params(key)} == {
            name: str(value) for name, value in trial_params(key).items()
        }
        assert set(child.data.metrics) >= {"accuracy", "precision", "recall", "f1_score"}
        assert child.data.tags["evaluation_digest"] == digest  # every trial scored on the same rows
        # Its family, as a param and a tag, and the family's ONNX file.
        family = trial_params(key).get("family", DEFAULT_FAMILY)
        assert child.data.params["family"] == child.data.tags[FAMILY_TAG] == family
        assert onnx_artifact(family) in artifact_paths(stack.tracking_uri, child.info.run_id)
        # Each trial its own Dagster run, a partition of iris_trials, tagged with its sweep.
        (trial_run,) = [
            stack.instance.get_run_by_id(run_id) for run_id in child.data.tags["dagster_run_ids"].split()[:1]
        ]
        assert trial_run.job_name == "iris_trial" and trial_run.tags["dagster/partition"] == key
        assert trial_run.tags[SWEEP_TAG] == sweep_run_id
    assert len({child.data.tags["dagster_run_id"] for child in children}) == len(keys)

    rule = RegistryConfig().rule()
    best = max(
        by_key.items(), key=lambda kv: (kv[1].data.metrics[rule.metric], kv[1].data.metrics[rule.tie_breaker], kv[0])
    )
    tags, metrics = parent.data.tags, parent.data.metrics
    assert metrics["trials"] == len(keys)
    assert tags["best_trial"] == best[0] and tags["best_trial_run_id"] == best[1].info.run_id
    assert metrics[f"best.{rule.metric}"] == best[1].data.metrics[rule.metric]
    assert tags["child_run_ids"].split() == sorted(child.info.run_id for child in children)
    assert tags["dagster_run_url"] == f"{stack.url}/runs/{sweep_run_id}"
    assert tags["splits_run_id"] == stack.instance.get_latest_materialization_event(dg.AssetKey("splits")).run_id
    client = _client(stack)
    summary = json.load(open(client.download_artifacts(parent.info.run_id, "sweep_summary.json")))
    assert sorted(trial["key"] for trial in summary["trials"]) == sorted(keys)
    assert summary["best"]["key"] == best[0]
    assert {(t["key"], t["family"]) for t in summary["trials"]} == {
        (key, trial_params(key).get("family", DEFAULT_FAMILY)) for key in keys
    }
    plot = open(client.download_artifacts(parent.info.run_id, f"{rule.metric}_by_hyperparameter.png"), "rb").read()
    assert plot.startswith(b"\x89PNG")

    # The best trial's model is a version of the registered model, with the decision recorded.
    (version,) = client.search_model_versions(
        f"name = '{DEFAULT_REGISTERED_MODEL}' and tags.sweep_parent_run_id = '{parent.info.run_id}'"
    )
    assert version.run_id == best[1].info.run_id and version.tags["trial"] == best[0]
    assert version.tags["family"] == best[1].data.params["family"]
    # ... that competed for champion like any version: against the champion, on the sweep's rows.
    assert version.tags[PROMOTION_TAG] in ("promoted", "not promoted")
    assert version.tags[COMPARED_WITH_TAG].startswith("v"), version.tags  # the pipeline's run made a champion
    assert version.tags["evaluation_digest"] == digest
    return parent, by_key, best, version


def _partitions(stack: Stack) -> list[str]:
    return list(stack.instance.get_dynamic_partitions("iris_trials"))


# -- the tests --------------------------------------------------------------------------------------


@dataclass
class GridSweep:
    run_id: str
    keys: list[str]
    parent: object
    output: str


@pytest.fixture(scope="module")
def grid_sweep(stack, pipeline_ran) -> GridSweep:
    """`iris-sweep launch examples/families.yaml --wait`: what it printed, the settled parent run."""
    launched = stack.iris_sweep("launch", str(SWEEP_FILE), "--wait")
    assert launched.returncode == 0, (launched.stdout, launched.stderr, stack.logs())
    lines = launched.stdout.splitlines()
    run_id = lines[0].split()[1].rstrip(":")  # "sweep <id>: <url>"
    assert lines[0] == f"sweep {run_id}: {stack.url}/runs/{run_id}"
    keys = load(SWEEP_FILE).keys
    return GridSweep(run_id, keys, _assert_settled_sweep(stack, run_id, keys)[0], launched.stdout)


def test_a_grid_sweep_launched_from_the_cli_with_wait(stack, grid_sweep):
    """`iris-sweep launch examples/families.yaml --wait` on a brand-new instance: six trials of three
    families, one parent, six children (each with its family), the best of all registered and decided
    under the one rule; a line per finished trial, then the decision."""
    run_id, keys = grid_sweep.run_id, grid_sweep.keys
    assert len(keys) == 6
    assert {trial_params(key).get("family", DEFAULT_FAMILY) for key in keys} == {
        "random_forest",
        "svm",
        "logistic_regression",
    }
    assert stack.instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    parent, by_key, best, version = _assert_settled_sweep(stack, run_id, keys)
    lines = grid_sweep.output.splitlines()
    progress = [line for line in lines if line.startswith("trial ")]
    assert [line.split()[1] for line in progress] == [f"{n}/6" for n in range(1, 7)], lines
    assert sorted(line.split()[2].rstrip(":") for line in progress) == sorted(keys)
    for line in progress:
        key = line.split()[2].rstrip(":")
        assert f": accuracy {by_key[key].data.metrics['accuracy']:.3f} (best so far: " in line, line
    assert progress[-1].endswith(f"(best so far: {best[0]} {best[1].data.metrics['accuracy']:.3f})")
    decision = "champion" if version.tags[PROMOTION_TAG] == "promoted" else "not promoted"
    assert lines[-2].startswith(
        f"best trial {best[0]}: accuracy {best[1].data.metrics['accuracy']:.3f}; registered "
        f"{DEFAULT_REGISTERED_MODEL}/{version.version}: {decision} ("
    ), lines
    assert lines[-1] == f"sweep {run_id}: SUCCESS"
    # Before the first trial ends, the trials' counts as they change (the run queue's four at a time).
    counts = [line for line in lines if line.startswith("trials: ")]
    assert counts[0] == "trials: 6 queued, 0 running, 0 done", lines
    assert lines.index(counts[0]) == 1 and lines.index(counts[0]) < lines.index(progress[0]), lines
    assert any(" 0 done" in line and " 0 running" not in line for line in counts), lines  # trials seen running
    assert counts[-1] == "trials: 0 queued, 0 running, 6 done", lines
    assert len(set(counts)) == len(counts), lines  # a line when the counts change, not every second
    for line in counts:
        queued, running, done = (int(part.split()[0]) for part in line.removeprefix("trials: ").split(", "))
        assert queued + running + done == 6, line
    assert lines.index(counts[-1]) < lines.index(lines[-2]), lines  # before the decision

    # Every trial is a partition of iris_trials, declared by the sweep.
    assert set(keys) <= set(_partitions(stack))


def test_the_sweep_finds_the_code_location_that_holds_its_job(stack):
    """`dg dev` names the code location after the checkout's folder: iris-sweep asks the webserver
    which location holds iris_sweep, and refuses in one line, naming the locations, when none does."""
    workspace = _graphql(stack.url, _WORKSPACE, {})["workspaceOrError"]
    assert job_selector(stack.url, SWEEP_JOB) == REPOSITORY_SELECTOR  # workspace.yaml's location
    # The same workspace as a clone in another folder serves it, and with the job gone.
    renamed = copy.deepcopy(workspace)
    for entry in renamed["locationEntries"]:
        entry["name"] = "my iris clone"
    assert select_repository(renamed, SWEEP_JOB, stack.url) == {
        "repositoryLocationName": "my iris clone",
        "repositoryName": REPOSITORY_SELECTOR["repositoryName"],
    }
    with pytest.raises(LaunchError) as refused:
        select_repository(renamed, "not_a_job", stack.url)
    assert str(refused.value) == (
        f"no code location of the Dagster webserver at {stack.url} holds the job not_a_job (locations: "
        "my iris clone): start it from this repository (iris-ui, dg dev, or -w workspace.yaml)"
    )
    broken = {"__typename": "Workspace", "locationEntries": [
        {"name": "iris_assets", "locationOrLoadError": {"__typename": "PythonError", "message": "ImportError:\n  x"}}
    ]}  # fmt: skip
    with pytest.raises(LaunchError, match=r"\(locations: iris_assets \(not loaded: ImportError: x\)\)"):
        select_repository(broken, SWEEP_JOB, stack.url)


def test_a_sweep_launched_from_the_launchpad(stack, pipeline_ran):
    """The UI's call: the Launchpad of iris_sweep, the sweep under ops.open_sweep.config; one trial."""
    config = {"ops": {"open_sweep": {"config": {"name": "one", "grid": {"n_estimators": [7], "max_depth": [3]}}}}}
    run_id = launch_job(stack.port, "iris_sweep", config)
    assert wait_for_run(stack.port, run_id, timeout=SWEEP_WAIT) == "SUCCESS", stack.logs()
    parent, _, _, _ = _assert_settled_sweep(stack, run_id, ["max_depth=3__n_estimators=7"])
    assert parent.data.tags["mlflow.runName"] == "sweep-one"


def test_a_failed_trial_fails_the_sweep_until_it_is_re_executed(stack, pipeline_ran, tmp_path):
    """`--wait` on a sweep whose trial's run worker is killed mid-step: the sweep fails naming it, its
    parent ends FAILED; re-executing that trial from failure continues its child run, and
    re-executing the sweep from failure settles the same parent FINISHED with its best trial registered."""
    slow, quick = "max_depth=4__n_estimators=1500", "max_depth=4__n_estimators=5"
    sweep_file = tmp_path / "slow.yaml"
    sweep_file.write_text(yaml.safe_dump({"name": "slow", "grid": {"n_estimators": [1500, 5], "max_depth": [4]}}))
    follower = subprocess.Popen(
        [str(BIN / "iris-sweep"), "launch", str(sweep_file), "--wait", "--dagster-url", stack.url],
        cwd=tmp_path, env={**os.environ, **stack.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    # The slow trial's run worker, once its step has opened the trial's child run: killed.
    def slow_trial_bound():
        runs = stack.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": slow}))
        if not runs or RUN_WORKER_TAG not in runs[0].tags:
            return None
        children = [c for p in _parents(stack) for c in _children(stack, p.info.run_id)]
        bound = [c for c in children if c.data.tags.get("dagster_run_id") == runs[0].run_id]
        return bound and runs[0]

    victim = wait_until(slow_trial_bound, timeout=SWEEP_WAIT, what="the slow trial's child run", interval=0.2)
    os.kill(int(victim.tags[RUN_WORKER_TAG].split(":")[1]), signal.SIGKILL)

    out, err = follower.communicate(timeout=SWEEP_WAIT)
    assert follower.returncode == 1, (out, err)
    sweep_run_id = victim.tags[SWEEP_TAG]
    assert f"wait_for_trials failed: 1 trial(s) failed: {slow}." in out, out
    assert out.splitlines()[-1] == f"sweep {sweep_run_id}: FAILURE"
    parent = _parent_of(stack, sweep_run_id)
    assert parent.info.status == "FAILED" and parent.data.tags[FAILED_TRIALS_TAG] == slow

    # The killed trial's child run is ended FAILED by the run-failure sensor (within its interval).
    def killed_child_closed():
        (child,) = [c for c in _children(stack, parent.info.run_id) if c.data.tags[TRIAL_TAG] == slow]
        return child.info.status == "FAILED" and child

    killed_child = wait_until(killed_child_closed, timeout=120, what="the killed trial's child run to end FAILED")

    # "Re-execute from failure" on the trial's run: the same child run continues and finishes;
    # then on the sweep's run: the same parent continues and settles.
    retry = reexecute_from_failure(stack.port, victim.run_id)
    assert wait_for_run(stack.port, retry, timeout=300) == "SUCCESS", stack.logs()
    sweep_retry = reexecute_from_failure(stack.port, sweep_run_id)
    assert wait_for_run(stack.port, sweep_retry, timeout=SWEEP_WAIT) == "SUCCESS", stack.logs()
    settled, by_key, _, _ = _assert_settled_sweep(stack, sweep_run_id, [slow, quick])
    assert settled.info.run_id == parent.info.run_id
    assert settled.data.tags["dagster_run_ids"].split() == [sweep_run_id, sweep_retry]
    assert by_key[slow].info.run_id == killed_child.info.run_id
    assert by_key[slow].data.tags["dagster_run_ids"].split() == [victim.run_id, retry]


@pytest.mark.browser
def test_the_sweep_in_the_mlflow_ui(stack, grid_sweep, tmp_path):
    """The parent run and its children as MLflow's UI shows them (the README's picture)."""
    from playwright.sync_api import expect, sync_playwright

    from iris_assets_tests.conftest import LEFT_BEHIND
    from iris_assets_tests.test_browser import CHROMIUM_ARGS, screenshot_folder, show_model_training

    port = free_port()
    server = mlflow_server(tmp_path, port, store=stack.tracking_uri)
    folder = screenshot_folder()
    parent = grid_sweep.parent
    base = f"http://127.0.0.1:{port}/#/experiments/{parent.info.experiment_id}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)  # a loaded machine renders MLflow's pages slowly
            page.goto(f"{base}/runs/{parent.info.run_id}?workflowType=machine_learning")  # as the project links
            show_model_training(page)
            expect(page.get_by_text(parent.data.tags["mlflow.runName"]).first).to_be_visible()
            for metric in ("trials", "best.accuracy"):
                expect(page.get_by_role("link", name=metric, exact=True)).to_be_visible()
            page.screenshot(path=f"{folder}/sweep-parent-run.png")
            page.goto(f"{base}/runs?workflowType=machine_learning")  # the parent, its six children under it
            expect(page.get_by_text(parent.data.tags["mlflow.runName"]).filter(visible=True).first).to_be_visible()
            page.screenshot(path=f"{folder}/sweep-runs.png")
            browser.close()
    finally:
        server.stop()
    LEFT_BEHIND.append(f"sweep screenshots: {folder}")
