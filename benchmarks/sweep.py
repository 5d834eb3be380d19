"""7. Sweeps: a sweep (one run of iris_sweep, its trials through the run queue) against the same
trials as a for-loop of pipeline runs.

One stack (sqlite Dagster home with the deployment's queue of 4 runs, sqlite MLflow
store, dagster-webserver and dagster-daemon), the pipeline run once so the sweep has
splits. A: ``launch_sweep(examples/sweep.yaml)`` and ``wait_for_sweep`` until the sweep's
run ends (what ``iris-sweep launch --wait`` does). B: what a user without sweeps types, a
for-loop of ``dagster job execute -j iris_pipeline`` with each trial's hyperparameters, one
after another in the foreground. Where the sweep's time goes is read from its runs.
"""

import time
from pathlib import Path

import dagster as dg
import yaml

from benchmarks.harness import BIN, REPO_ROOT, Row, base_env, interleave, run_timed
from iris_harness.processes import Service, free_port, wait_for_http

SWEEP_FILE = REPO_ROOT / "examples" / "sweep.yaml"
QUICK_SWEEP = {"name": "quick", "grid": {"n_estimators": [10, 20], "max_depth": [3]}}


def run(repetitions: int, work_dir: Path, quick: bool) -> tuple[list[Row], str]:
    from iris_assets.tuning.launch import launch_sweep, wait_for_sweep
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
    trials = load(sweep_file).trials
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = base_env(
        DAGSTER_HOME=str(home),
        MLFLOW_TRACKING_URI=tracking_uri,
        IRIS_STATE_DIR=str(folder / "state"),
        DAGSTER_UI_URL=url,
    )
    run_timed([str(BIN / "iris-runs"), "init"], folder, env)
    services = [
        Service(
            "webserver", ["dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)], folder, env
        ),
        Service("daemon", ["dagster-daemon", "run", "-w", "workspace.yaml"], folder, env),
    ]
    execute = [str(BIN / "dagster"), "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline"]
    try:
        wait_for_http(f"{url}/server_info", services[0], timeout=120)
        run_timed(execute, REPO_ROOT, env, log=folder / "stdout.log")
        sweeps: list[str] = []

        def swept() -> float:
            start = time.perf_counter()
            run_id = launch_sweep(str(sweep_file), url)
            status = wait_for_sweep(run_id, url, out=lambda line: None)
            if status != "SUCCESS":
                raise RuntimeError(f"sweep {run_id} ended {status}")
            sweeps.append(run_id)
            return time.perf_counter() - start

        def one_after_another() -> float:
            total = 0.0
            for number, params in enumerate(trials):
                config = folder / f"trial-{number}.yaml"
                config.write_text(yaml.safe_dump({"ops": {"model": {"config": params}}}))
                total += run_timed([*execute, "-c", str(config)], REPO_ROOT, env, log=folder / "stdout.log").seconds
            return total

        samples = interleave(repetitions, {"sweep": swept, "sequential": one_after_another})
        with dg.DagsterInstance.from_config(str(home)) as instance:
            detail = _where_the_time_goes(instance, sweeps[-1], len(trials))
    finally:
        for service in services:
            service.stop()
    rows = [
        Row(
            "7. Sweeps",
            f"a {len(trials)}-trial sweep (`iris-sweep launch --wait`, queue of 4) / the same trials as a for-loop "
            "of `dagster job execute`, wall time",
            samples["sweep"],
            samples["sequential"],
            goal="<= 0.75",
        )
    ]
    return rows, detail


def _where_the_time_goes(instance: dg.DagsterInstance, sweep_run_id: str, trials: int) -> str:
    from iris_assets.tuning.ops import SWEEP_TAG

    runs = [
        instance.get_run_by_id(sweep_run_id),
        *instance.get_runs(filters=dg.RunsFilter(tags={SWEEP_TAG: sweep_run_id})),
    ]
    records = {
        r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(run_ids=[r.run_id for r in runs]))
    }
    sweep = records[sweep_run_id]
    zero = sweep.create_timestamp.timestamp()
    trial_records = [records[r.run_id] for r in runs if r.run_id != sweep_run_id]
    first_trial_queued = min(r.create_timestamp.timestamp() for r in trial_records)
    rows = [
        ("the sweep's run starts (queue, run worker)", sweep.start_time),
        ("its trials are requested (sensor)", first_trial_queued),
        ("the first trial starts", min(r.start_time or 0 for r in trial_records)),
        (f"the last of {trials} trials ends", max(r.end_time or 0 for r in trial_records)),
        ("the sweep's run ends (best trial registered)", sweep.end_time),
    ]
    lines = [
        "### Where a sweep's time goes (the last sweep, seconds after its run was created)",
        "",
        "| moment | seconds |",
        "|---|---|",
        *[f"| {name} | {(moment or zero) - zero:.1f} |" for name, moment in rows],
        "",
        "A sweep is one run of `iris_sweep`; the sensor `launch_sweep_trials` (the sensor daemon's",
        "loop, ~5 s) requests its trials, which run side by side through the queue, each in a run",
        "worker forked from the code server's preloaded forkserver; `wait_for_trials` sees each end",
        "within half a second and `best_trial` registers the best. No asset backfill, so no",
        "30-second backfill-daemon loop between stages.",
    ]
    return "\n".join(lines) + "\n"
