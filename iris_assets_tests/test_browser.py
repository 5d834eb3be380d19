"""Issues 8 and 21: "Materialize all" on the global lineage page of the Dagster UI, driven in a real
(headless) Chromium, then the run's plots and its MLflow run.

One stack for every step: an MLflow tracking server, dagster-webserver and
dagster-daemon (runs are queued, as in any default instance), all on 127.0.0.1
with a temporary DAGSTER_HOME. The browser is Debian's chromium driven by
Playwright; Playwright never downloads a browser. Screenshots of each step stay
in .iris_state/test-screenshots/<time>/ (or $IRIS_SCREENSHOT_DIR).
"""

import contextlib
import os
import re
import shutil
import time

import dagster as dg
import pytest
from mlflow import MlflowClient

from iris_assets import defs, groups
from iris_assets_tests.conftest import LEFT_BEHIND
from iris_assets_tests.mlflow_checks import EXPECTED_ARTIFACTS, artifact_paths, only_run, runs_of
from iris_harness.environment import REPO_ROOT
from iris_harness.processes import Service, dagster_webserver, free_port, mlflow_server

pytestmark = [pytest.mark.browser, pytest.mark.servers]

# The network is closed: nothing that phones home, no sandbox (root in a container).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RUN_TIMEOUT_MS = 240_000
# The run page's status tag once a run is over.
RUN_OVER = re.compile(r"^(Success|Failure|Canceled)$")


def screenshot_folder() -> str:
    """Where the browser tests put their pictures: $IRIS_SCREENSHOT_DIR, else a new dated folder."""
    folder = os.environ.get("IRIS_SCREENSHOT_DIR") or str(
        REPO_ROOT / ".iris_state" / "test-screenshots" / time.strftime("%Y%m%d-%H%M%S")
    )
    os.makedirs(folder, exist_ok=True)
    return folder


def show_model_training(page) -> None:
    """MLflow 3.17 shows a run in its GenAI view with an "MLflow Assistant" panel over it
    (the `workflowType` of a link is not enough): close the panel, choose "Model training"."""
    close = page.get_by_role("button", name="Close", exact=True)
    close.wait_for(timeout=60_000)
    close.click()
    page.get_by_role("button", name="Model training", exact=True).click()


@pytest.fixture
def stack(tmp_path, dagster_home, monkeypatch):
    """(Dagster UI URL, MLflow URL): the servers the assets log to and link to."""
    mlflow_port, web_port = free_port(), free_port()
    mlflow_url, dagster_url = f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{web_port}"
    # The assets log to the server, and their links default to its URL.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    monkeypatch.setenv("DAGSTER_UI_URL", dagster_url)
    services = [mlflow_server(tmp_path, mlflow_port)]
    try:
        services.append(Service("daemon", ["dagster-daemon", "run", "-w", "workspace.yaml"], tmp_path))
        services.append(dagster_webserver(tmp_path, web_port))
        yield dagster_url, mlflow_url
    finally:
        for service in reversed(services):
            service.stop()


@pytest.fixture
def screenshots():
    folder = screenshot_folder()
    LEFT_BEHIND.append(f"browser test screenshots: {folder}")
    return folder


@pytest.fixture
def browser(tmp_path, screenshots):
    """A Chromium context with a fresh profile; its last page is photographed at the end."""
    from playwright.sync_api import expect, sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: apt-get install chromium (scripts/test.sh does, as root)")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
        )
        # Bounded but generous: two cores shared with other work make pages slow.
        context.set_default_timeout(60_000)
        expect.set_options(timeout=60_000)
        # Dismissed, as a user would: the "Join the Dagster community" dialog covers the page.
        context.add_init_script("localStorage.setItem('communityNux', '1')")
        try:
            yield context
        finally:
            with contextlib.suppress(Exception):  # a picture for a failure; never hides one
                context.pages[-1].screenshot(path=f"{screenshots}/99-last-page.png")
            context.close()


def wait_for_run_page(page) -> str:
    """On a Dagster run page: wait for the run to end, return its status."""
    from playwright.sync_api import expect

    status = page.get_by_text(RUN_OVER).first
    expect(status).to_be_visible(timeout=RUN_TIMEOUT_MS)
    return status.inner_text()


def test_materialize_all_in_the_dagster_ui(browser, stack, screenshots, tracking_uri, tmp_path):
    from playwright.sync_api import expect

    dagster_url, mlflow_url = stack
    page = browser.new_page()

    def shot(page, name: str) -> None:
        page.screenshot(path=f"{screenshots}/{name}.png")

    # Issue step 2, as a new user finds it: the navigation's Lineage, the global asset graph, "Materialize
    # all": one click, one run (sweeps are jobs, not assets: no partition dialog, no backfill).
    page.goto(f"{dagster_url}/overview")
    page.get_by_text("Lineage", exact=True).click()  # the navigation's entry
    page.wait_for_url(re.compile(r"/asset-groups"))
    materialize = page.get_by_role("button", name=re.compile(r"Materialize all$"))  # no "…": no partition dialog
    expect(materialize).to_be_enabled()
    shot(page, "00-global-lineage")
    materialize.click()
    view = page.get_by_role("link", name="View", exact=True)
    expect(view).to_have_attribute("href", re.compile(r"^/runs/[0-9a-f-]{36}$"))
    shot(page, "01-materialize-all-launched")
    run_id = view.get_attribute("href").removeprefix("/runs/")
    page.goto(f"{dagster_url}/runs/{run_id}")  # where "View" leads; the toast may be gone by now
    assert wait_for_run_page(page) == "Success", f"see {tmp_path}/*.log"
    shot(page, "02-run-succeeded")
    with dg.DagsterInstance.get() as instance:  # one run, no backfill, no sweep
        assert [r.run_id for r in instance.get_runs()] == [run_id]
        assert instance.get_backfills() == []
    group_url = f"{dagster_url}/locations/iris_assets/asset-groups/iris"
    # The group's list view: every asset of the pipeline "Materialized".
    page.goto(f"{group_url}/list")
    graph = defs.resolve_asset_graph()
    asset_count = len([key for key in graph.get_all_asset_keys() if graph.get(key).group_name == groups.PIPELINE])
    expect(page.get_by_text("Materialized", exact=True)).to_have_count(asset_count)
    shot(page, "03-asset-group-materialized")

    # Step 3. Exactly one new MLflow run, FINISHED, with every artifact, for that Dagster run
    # (what the artifacts hold is checked for this same launch in test_servers.py).
    run = only_run(tracking_uri)
    assert run.info.status == "FINISHED"
    assert sorted(artifact_paths(tracking_uri, run.info.run_id)) == sorted(EXPECTED_ARTIFACTS)
    assert run.data.tags["dagster_run_id"] == run_id
    assert run.data.tags["dagster_run_url"] == f"{dagster_url}/runs/{run_id}"
    assert run.data.tags["mlflow.runName"] == f"iris_pipeline-{run_id[:8]}"  # not __ASSET_JOB
    run_url = (
        f"{mlflow_url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning"
    )

    # Step 4. The model asset's metadata links to that run; the MLflow UI shows its metrics.
    page.goto(f"{dagster_url}/assets/model")
    link = page.get_by_role("link", name=run_url, exact=True)
    expect(link).to_be_visible()
    shot(page, "04-model-asset")
    # A plot, one click from the asset page: the feature importance chart's "[Show Markdown]".
    chart = page.get_by_role("row").filter(has_text="feature_importance_chart")
    chart.get_by_text("[Show Markdown]").click()
    image = page.get_by_role("dialog").get_by_role("img", name="feature importance")
    expect(image).to_be_visible()
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    shot(page, "04b-feature-importance")
    page.keyboard.press("Escape")
    with browser.expect_page() as opened:
        link.click()
    mlflow_page = opened.value
    expect(mlflow_page).to_have_url(run_url)  # a new tab starts as about:blank
    for name in ("accuracy", "precision", "recall", "f1_score"):
        row = mlflow_page.get_by_role("row").filter(has=mlflow_page.get_by_role("link", name=name, exact=True))
        expect(row).to_contain_text(repr(run.data.metrics[name]))
    expect(mlflow_page.get_by_text("Finished", exact=True)).to_be_visible()
    mlflow_page.get_by_text(re.compile(r"^Parameters \(\d+\)$")).scroll_into_view_if_needed()
    shot(mlflow_page, "05-mlflow-run")
    mlflow_page.close()

    # Step 5. The Launchpad: the job with n_estimators=50 is a second MLflow run with that param.
    page.goto(f"{dagster_url}/locations/iris_assets/jobs/iris_pipeline/playground")
    page.locator(".CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text("ops: {model: {config: {n_estimators: 50}}}\n")
    expect(page.locator(".CodeMirror")).to_contain_text("n_estimators: 50")
    expect(page.get_by_text("No errors")).to_be_visible()
    shot(page, "06-launchpad-config")
    page.get_by_role("button", name="Launch Run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}$"))
    launched_id = page.url.rsplit("/", 1)[-1]
    assert wait_for_run_page(page) == "Success", f"see {tmp_path}/*.log"
    shot(page, "07-launchpad-run-succeeded")

    runs = {r.data.tags["dagster_run_id"]: r for r in runs_of(tracking_uri)}
    assert set(runs) == {run_id, launched_id}
    tuned = runs[launched_id]
    assert tuned.info.status == "FINISHED"
    assert tuned.data.params["n_estimators"] == "50"
    assert tuned.data.tags["dagster_job_name"] == "iris_pipeline"
    assert MlflowClient(tracking_uri).get_run(run.info.run_id).data.params["n_estimators"] == "100"
