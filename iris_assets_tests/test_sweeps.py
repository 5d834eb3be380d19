"""Hyperparameter sweeps: one backfill of the tuning group, one parent MLflow run, a child per trial.

One stack for the module, on the embedded stores: a sqlite Dagster home and a sqlite
MLflow store, with real dagster-webserver and dagster-daemon processes (the backfill
daemon runs the sweep, the sensor daemon settles it). The pipeline runs once first,
so the sweep has ``splits`` to pin and a champion to compete with.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml
from mlflow import MlflowClient

from iris_assets.registry.assets import RegistryConfig
from iris_assets.registry.promotion import COMPARED_WITH_TAG, PROMOTION_TAG
from iris_assets.runs.workers import RUN_WORKER_TAG
from iris_assets.settings import DEFAULT_REGISTERED_MODEL, DEFAULT_TUNING_EXPERIMENT
from iris_assets.tuning.assets import BACKFILL_TAG, FAILED_TRIALS_TAG, SWEEP_PARENT_TAG, TRIAL_TAG
from iris_assets.tuning.launch import REPOSITORY_SELECTOR, TUNING_ASSETS
from iris_assets.tuning.space import load, trial_params
from iris_assets_tests.mlflow_checks import artifact_paths
from iris_harness.environment import QUIET_ENV, REPO_ROOT
from iris_harness.graphql_client import graphql, launch_job, reexecute_from_failure, wait_for_run
from iris_harness.processes import Service, free_port, mlflow_server, wait_for_http, wait_until

pytestmark = pytest.mark.servers

SWEEP_FILE = REPO_ROOT / "examples" / "sweep.yaml"
SWEEP_WAIT = 600  # a backfill advances on the daemon's 30-second loop: about four loops per sweep


@dataclass
class Stack:
    folder: Path
    port: int
    url: str
    tracking_uri: str
    instance: dg.DagsterInstance
    services: list[Service]

    def logs(self) -> str:
        return "\n".join(f"--- {s.name}\n{s.log()[-3000:]}" for s in self.services)


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
        "IRIS_ORPHAN_SWEEP_SECONDS": "3",  # settle_sweeps and close_dead_runs
    }
    # A new home is initialised once, before its processes race to create its tables (scripts/env.sh).
    assert Service("init", ["iris-runs", "init"], folder, env).process.wait(120) == 0
    webserver = Service(
        "webserver", ["dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], folder, env
    )
    daemon = Service("daemon", ["dagster-daemon", "run", "-w", "workspace.yaml"], folder, env)
    services = [webserver, daemon]
    try:
        wait_for_http(f"{url}/server_info", webserver)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            stack = Stack(folder, port, url, tracking_uri, instance, services)
            status = wait_for_run(port, launch_job(port), timeout=300)  # splits to pin, a champion to beat
            assert status == "SUCCESS", stack.logs()
            yield stack
    finally:
        for service in services:
            service.stop()


# -- reading a sweep back -----------------------------------------------------------------------


def _client(stack: Stack) -> MlflowClient:
    return MlflowClient(stack.tracking_uri)


def _parents(stack: Stack) -> list:
    client = _client(stack)
    experiment = client.get_experiment_by_name(DEFAULT_TUNING_EXPERIMENT)
    if experiment is None:  # no sweep has started yet
        return []
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{SWEEP_PARENT_TAG}` = 'true'")


def _parent_of(stack: Stack, backfill_id: str):
    (parent,) = [p for p in _parents(stack) if p.data.tags.get(BACKFILL_TAG) == backfill_id]
    return parent


def _children(stack: Stack, parent_run_id: str) -> list:
    client = _client(stack)
    experiment = client.get_experiment_by_name(DEFAULT_TUNING_EXPERIMENT)
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=1000
    )


def _wait_for_parent(stack: Stack, backfill_id: str, status: str):
    def settled():
        parents = [p for p in _parents(stack) if p.data.tags.get(BACKFILL_TAG) == backfill_id]
        return parents and parents[0].info.status == status and parents[0]

    return wait_until(settled, timeout=SWEEP_WAIT, what=f"sweep {backfill_id} to end {status}", interval=2)


def _assert_settled_sweep(stack: Stack, backfill_id: str, keys: list[str]):
    """One FINISHED parent, a FINISHED child per trial, the summary, the best trial registered."""
    parent = _wait_for_parent(stack, backfill_id, "FINISHED")
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
        assert "onnx_model/iris_random_forest.onnx" in artifact_paths(stack.tracking_uri, child.info.run_id)
    # One Dagster run per trial, and each child bound to its own.
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
    assert tags["dagster_backfill_url"] == f"{stack.url}/runs/b/{backfill_id}"
    assert not any(tag.startswith("upstream.trial_") for tag in tags)  # no single trial is "the" upstream
    client = _client(stack)
    summary = json.load(open(client.download_artifacts(parent.info.run_id, "sweep_summary.json")))
    assert sorted(trial["key"] for trial in summary["trials"]) == sorted(keys)
    assert summary["best"]["key"] == best[0]
    plot = open(client.download_artifacts(parent.info.run_id, f"{rule.metric}_by_hyperparameter.png"), "rb").read()
    assert plot.startswith(b"\x89PNG")

    # The best trial's model is a version of the registered model, with the decision recorded.
    (version,) = client.search_model_versions(
        f"name = '{DEFAULT_REGISTERED_MODEL}' and tags.sweep_parent_run_id = '{parent.info.run_id}'"
    )
    assert version.run_id == best[1].info.run_id and version.tags["trial"] == best[0]
    # ... that competed for champion like any version: against the champion, on the sweep's rows.
    assert version.tags[PROMOTION_TAG] in ("promoted", "not promoted")
    assert version.tags[COMPARED_WITH_TAG].startswith("v"), version.tags  # the pipeline's run made a champion
    assert version.tags["evaluation_digest"] == digest
    return parent, by_key


def _partitions(stack: Stack) -> list[str]:
    return list(stack.instance.get_dynamic_partitions("iris_trials"))


# -- the tests --------------------------------------------------------------------------------------


@dataclass
class GridSweep:
    backfill_id: str
    keys: list[str]
    parent: object


@pytest.fixture(scope="module")
def grid_sweep(stack) -> GridSweep:
    """`iris-sweep launch examples/sweep.yaml`, settled: what the CLI printed, the parent run."""
    launched = Service(
        "iris-sweep", ["iris-sweep", "launch", str(SWEEP_FILE), "--dagster-url", stack.url], stack.folder
    )
    assert launched.process.wait(120) == 0, launched.log()
    backfill_id = launched.log().split()[1].rstrip(":")  # "backfill <id>: <url>"
    keys = load(SWEEP_FILE).keys
    return GridSweep(backfill_id, keys, _assert_settled_sweep(stack, backfill_id, keys)[0])


def test_a_grid_sweep_launched_from_the_cli(stack, grid_sweep, tmp_path):
    """`iris-sweep launch examples/sweep.yaml`: six trials, one parent, six children, the best registered;
    declaring the sweep again with one more value adds only the trials it did not have."""
    backfill_id, keys = grid_sweep.backfill_id, grid_sweep.keys
    assert len(keys) == 6
    backfill = stack.instance.get_backfill(backfill_id)
    wait_until(
        lambda: stack.instance.get_backfill(backfill_id).status.value == "COMPLETED_SUCCESS", 120, "the backfill"
    )
    assert sorted(backfill.asset_selection) == sorted(asset.key for asset in TUNING_ASSETS)
    for asset in ("trial_model", "trial_metrics"):
        assert stack.instance.get_materialized_partitions(dg.AssetKey(asset)) >= set(keys)

    # The same sweep with one more forest size: two more trials (one per depth), nothing else.
    spec = yaml.safe_load(SWEEP_FILE.read_text())
    spec["grid"]["n_estimators"].append(200)
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(spec))
    before = set(_partitions(stack))
    declared = Service(
        "iris-sweep-declare", ["iris-sweep", "declare", str(bigger), "--dagster-url", stack.url], tmp_path
    )
    assert declared.process.wait(120) == 0, declared.log()
    added = set(_partitions(stack)) - before
    assert added == {"max_depth=2__n_estimators=200", "max_depth=10__n_estimators=200"}
    assert "8 trial(s) declared, 2 new" in declared.log()
    again = Service("iris-sweep-again", ["iris-sweep", "declare", str(bigger), "--dagster-url", stack.url], tmp_path)
    assert again.process.wait(120) == 0 and "0 new" in again.log()


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""
ADD_PARTITION = """
mutation($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) { __typename }
}
"""


def test_a_failed_trial_fails_the_sweep_until_it_is_re_executed(stack):
    """Through the UI's calls (add the partitions, "Materialize" the tuning group over them): a trial's
    run worker killed mid-step ends the parent FAILED naming it; re-executing that trial from failure
    continues its child run, and the sweep is then settled FINISHED with its best trial registered."""
    slow, quick = "max_depth=4__n_estimators=1500", "max_depth=4__n_estimators=5"
    for key in (slow, quick):
        added = graphql(stack.port, ADD_PARTITION, {"selector": REPOSITORY_SELECTOR, "name": "iris_trials", "key": key})
        assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess", added
    params = {
        "assetSelection": [{"path": asset.key.path} for asset in TUNING_ASSETS],
        "partitionNames": [slow, quick],
        "fromFailure": False,
        "tags": [],
    }
    answer = graphql(stack.port, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert answer["__typename"] == "LaunchBackfillSuccess", answer
    backfill_id = answer["backfillId"]

    # The slow trial's run worker, once its step has opened the trial's child run: killed.
    def slow_trial_bound():
        runs = stack.instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id, "dagster/partition": slow})
        )
        if not runs or RUN_WORKER_TAG not in runs[0].tags:
            return None
        children = [c for p in _parents(stack) for c in _children(stack, p.info.run_id)]
        bound = [c for c in children if c.data.tags.get("dagster_run_id") == runs[0].run_id]
        return bound and runs[0]

    victim = wait_until(slow_trial_bound, timeout=SWEEP_WAIT, what="the slow trial's child run", interval=0.2)
    os.kill(int(victim.tags[RUN_WORKER_TAG].split(":")[1]), signal.SIGKILL)

    parent = _wait_for_parent(stack, backfill_id, "FAILED")
    assert parent.data.tags[FAILED_TRIALS_TAG] == slow
    failed_run = stack.instance.get_run_by_id(victim.run_id)
    assert failed_run.status == dg.DagsterRunStatus.FAILURE
    (killed_child,) = [c for c in _children(stack, parent.info.run_id) if c.data.tags[TRIAL_TAG] == slow]
    assert killed_child.info.status == "FAILED"

    # "Re-execute from failure" on the trial's run: the same child run continues and finishes.
    retry = reexecute_from_failure(stack.port, victim.run_id)
    assert wait_for_run(stack.port, retry, timeout=300) == "SUCCESS", stack.logs()
    _, by_key = _assert_settled_sweep(stack, backfill_id, [slow, quick])
    assert by_key[slow].info.run_id == killed_child.info.run_id
    assert by_key[slow].data.tags["dagster_run_ids"].split() == [victim.run_id, retry]


@pytest.mark.browser
def test_the_sweep_in_the_mlflow_ui(stack, grid_sweep, tmp_path):
    """The parent run and its children as MLflow's UI shows them (the README's picture)."""
    from playwright.sync_api import expect, sync_playwright

    from iris_assets_tests.conftest import LEFT_BEHIND
    from iris_assets_tests.test_browser import CHROMIUM_ARGS, screenshot_folder

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
            page.goto(f"{base}/runs/{parent.info.run_id}")
            expect(page.get_by_text(parent.data.tags["mlflow.runName"]).first).to_be_visible()
            for metric in ("trials", "best.accuracy"):
                expect(page.get_by_role("link", name=metric, exact=True)).to_be_visible()
            page.screenshot(path=f"{folder}/sweep-parent-run.png")
            page.goto(f"{base}/runs")  # the experiment's runs table: the parent, its six children under it
            expect(page.get_by_text(parent.data.tags["mlflow.runName"]).filter(visible=True).first).to_be_visible()
            page.screenshot(path=f"{folder}/sweep-runs.png")
            browser.close()
    finally:
        server.stop()
    LEFT_BEHIND.append(f"sweep screenshots: {folder}")
