"""7. Sweeps: a sweep launched as one backfill, against the same trials run one after another.

One stack (sqlite Dagster home with the deployment's queue of 4 runs, sqlite MLflow
store, dagster-webserver and dagster-daemon), the pipeline run once so the sweep has
splits. A: ``launch_sweep(examples/sweep.yaml)`` until the parent MLflow run is
FINISHED (the trials through the run queue, in parallel). B: the same work as
``dagster asset materialize`` commands one after another (``sweep``, each trial's
partition, ``best_trial``), each in the foreground, as a user without the daemon
would. Where the sweep's time goes is read from its backfill's runs.
"""

import time
from pathlib import Path

import dagster as dg
import yaml

from benchmarks.harness import BIN, REPO_ROOT, Row, base_env, interleave, run_timed
from iris_harness.processes import Service, free_port, wait_for_http, wait_until

SWEEP_FILE = REPO_ROOT / "examples" / "sweep.yaml"
QUICK_SWEEP = {"name": "quick", "grid": {"n_estimators": [10, 20], "max_depth": [3]}}


def run(repetitions: int, work_dir: Path, quick: bool) -> tuple[list[Row], str]:
    from mlflow import MlflowClient

    from iris_assets.settings import DEFAULT_TUNING_EXPERIMENT
    from iris_assets.tuning.assets import BACKFILL_TAG, SWEEP_PARENT_TAG
    from iris_assets.tuning.launch import launch_sweep
    from iris_assets.tuning.space import load

    folder = work_dir / "sweep"
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "concurrency": {"runs": {"max_concurrent_runs": 4}, "pools": {"default_limit": 1}},
                "telemetry": {"enabled": False},
            }
        )
    )
    sweep_file = SWEEP_FILE
    if quick:
        sweep_file = folder / "quick.yaml"
        sweep_file.write_text(yaml.safe_dump(QUICK_SWEEP))
    keys = load(sweep_file).keys
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = base_env(
        DAGSTER_HOME=str(home),
        MLFLOW_TRACKING_URI=tracking_uri,
        IRIS_STATE_DIR=str(folder / "state"),
        DAGSTER_UI_URL=url,
        IRIS_ORPHAN_SWEEP_SECONDS="5",
    )
    run_timed([str(BIN / "iris-runs"), "init"], folder, env)
    services = [
        Service(
            "webserver", ["dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], folder, env
        ),
        Service("daemon", ["dagster-daemon", "run", "-w", "workspace.yaml"], folder, env),
    ]
    try:
        wait_for_http(f"{url}/server_info", services[0], timeout=120)
        run_timed(
            [str(BIN / "dagster"), "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline"],
            REPO_ROOT,
            env,
            log=folder / "stdout.log",
        )
        client = MlflowClient(tracking_uri)
        backfills: list[str] = []

        def parent_finished(backfill_id: str) -> bool:
            experiment = client.get_experiment_by_name(DEFAULT_TUNING_EXPERIMENT)
            if experiment is None:
                return False
            parents = client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`{SWEEP_PARENT_TAG}` = 'true' AND tags.`{BACKFILL_TAG}` = '{backfill_id}'",
            )
            if parents and parents[0].info.status not in ("RUNNING", "FINISHED"):
                raise RuntimeError(f"sweep {backfill_id} ended {parents[0].info.status}")
            return bool(parents) and parents[0].info.status == "FINISHED"

        def swept() -> float:
            start = time.perf_counter()
            backfill_id = launch_sweep(str(sweep_file), url)
            wait_until(lambda: parent_finished(backfill_id), timeout=1200, what="the sweep", interval=0.5)
            backfills.append(backfill_id)
            return time.perf_counter() - start

        def one_after_another() -> float:
            materialize = [str(BIN / "dagster"), "asset", "materialize", "-m", "iris_assets", "--select"]
            total = run_timed([*materialize, "sweep"], REPO_ROOT, env, log=folder / "stdout.log").seconds
            for key in keys:
                total += run_timed(
                    [*materialize, "trial_model,trial_metrics", "--partition", key],
                    REPO_ROOT,
                    env,
                    log=folder / "stdout.log",
                ).seconds
            return total + run_timed([*materialize, "best_trial"], REPO_ROOT, env, log=folder / "stdout.log").seconds

        samples = interleave(repetitions, {"sweep": swept, "sequential": one_after_another})
        with dg.DagsterInstance.from_config(str(home)) as instance:
            detail = _where_the_time_goes(instance, backfills[-1], len(keys))
    finally:
        for service in services:
            service.stop()
    rows = [
        Row(
            "7. Sweeps",
            f"a {len(keys)}-trial sweep (one backfill, queue of 4) / the same trials one after another, wall time",
            samples["sweep"],
            samples["sequential"],
        )
    ]
    return rows, detail


def _where_the_time_goes(instance: dg.DagsterInstance, backfill_id: str, trials: int) -> str:
    backfill = instance.get_backfill(backfill_id)
    assert backfill is not None
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
    records = {
        r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in runs]))
    }

    def span(selector) -> tuple[float, float]:
        chosen = [records[r.run_id] for r in runs if selector(r)]
        return min(r.start_time or 0 for r in chosen), max(r.end_time or 0 for r in chosen)

    sweep = span(lambda r: r.asset_selection == {dg.AssetKey("sweep")})
    trial = span(lambda r: "dagster/partition" in r.tags)
    best = span(lambda r: r.asset_selection == {dg.AssetKey("best_trial")})
    zero = backfill.backfill_timestamp
    rows = [
        ("`sweep` run", sweep),
        (f"{trials} trial runs (first start → last end)", trial),
        ("`best_trial` run", best),
    ]
    lines = [
        "### Where a sweep's time goes (the last sweep, seconds after the backfill was created)",
        "",
        "| stage | starts | ends |",
        "|---|---|---|",
        *[f"| {name} | {start - zero:.1f} | {end - zero:.1f} |" for name, (start, end) in rows],
        "",
        "Dagster's backfill daemon moves an asset backfill forward once per loop, every 30 s",
        "(`DEFAULT_DAEMON_INTERVAL_SECONDS`, not configurable): the gaps between the stages above",
        "are mostly that wait, a fixed cost per stage whatever the number of trials. The trials",
        "themselves run side by side through the queue, so a larger sweep gains more.",
    ]
    return "\n".join(lines) + "\n"
