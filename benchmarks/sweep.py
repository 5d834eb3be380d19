"""7. Sweeps: a sweep (one run of iris_sweep, its trials through the run queue) against the same
trials as a for-loop of pipeline runs.

One stack (the sqlite Dagster home `iris-runs init` makes, sqlite MLflow store,
dagster-webserver and dagster-daemon), the pipeline run once so the sweep has
splits. A: ``launch_sweep(examples/sweep.yaml)`` and ``wait_for_sweep`` until the sweep's
run ends (what ``iris-sweep launch --wait`` does). B: what a user without sweeps types, a
for-loop of ``dagster job execute -j iris_pipeline`` with each trial's hyperparameters, one
after another in the foreground. The same for one trial: what a sweep costs beyond the run it
makes. Where the sweep's time goes is read from its runs.
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
    home = folder / "dagster_home"  # the instance `iris-runs init` makes: default settings
    home.mkdir(parents=True)
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
        sweeps: dict[Path, str] = {}  # the last sweep of each file

        def sweep_of(path: Path):
            def swept() -> float:
                start = time.perf_counter()
                run_id = launch_sweep(str(path), url)
                if (status := wait_for_sweep(run_id, url, out=lambda line: None)) != "SUCCESS":
                    raise RuntimeError(f"sweep {run_id} ended {status}")
                sweeps[path] = run_id
                return time.perf_counter() - start

            return swept

        def one_after_another() -> float:
            total = 0.0
            for number, params in enumerate(trials):
                config = folder / f"trial-{number}.yaml"
                config.write_text(yaml.safe_dump({"ops": {"model": {"config": params}}}))
                total += run_timed([*execute, "-c", str(config)], REPO_ROOT, env, log=folder / "stdout.log").seconds
            return total

        one_trial_file = folder / "one-trial.yaml"
        one_trial_file.write_text(yaml.safe_dump({"name": "one", "grid": {k: [v] for k, v in trials[0].items()}}))
        one_trial_config = folder / "one-trial-run.yaml"
        one_trial_config.write_text(yaml.safe_dump({"ops": {"model": {"config": trials[0]}}}))

        def one_run() -> float:
            return run_timed([*execute, "-c", str(one_trial_config)], REPO_ROOT, env, log=folder / "stdout.log").seconds

        samples = interleave(
            repetitions,
            {
                "sweep": sweep_of(sweep_file),
                "sequential": one_after_another,
                "one-trial sweep": sweep_of(one_trial_file),
                "one run": one_run,
            },
        )
        with dg.DagsterInstance.from_config(str(home)) as instance:
            detail = _where_the_time_goes(
                instance, {f"{len(trials)} trials": sweeps[sweep_file], "1 trial": sweeps[one_trial_file]}
            )
    finally:
        for service in services:
            service.stop()
    rows = [
        Row(
            "7. Sweeps",
            f"a {len(trials)}-trial sweep (`iris-sweep launch --wait`, default instance) / the same trials as a for-loop "
            "of `dagster job execute`, wall time",
            samples["sweep"],
            samples["sequential"],
            goal="<= 0.75",
        ),
        Row(
            "7. Sweeps",
            "a 1-trial sweep (`iris-sweep launch --wait`) / the same trial as one `dagster job execute`, wall time",
            samples["one-trial sweep"],
            samples["one run"],
            note=f"the sweep costs {samples['one-trial sweep'].median - samples['one run'].median:+.1f} s",
        ),
    ]
    return rows, detail


def _where_the_time_goes(instance: dg.DagsterInstance, sweeps: dict[str, str]) -> str:
    """The moments of each sweep's runs, in seconds after its run was created, side by side."""
    columns = [_moments(instance, run_id) for run_id in sweeps.values()]
    names = [
        "the sweep's run starts (queue, run worker)",
        "its trials are requested (sensor)",
        "the first trial starts",
        "the last trial ends",
        "the sweep's run ends (best trial registered)",
    ]
    lines = [
        "### Where a sweep's time goes (the last sweep of each size, seconds after its run was created)",
        "",
        f"| moment | {' | '.join(sweeps)} |",
        f"|---|{'---|' * len(sweeps)}",
        *[f"| {name} | {' | '.join(f'{column[i]:.1f}' for column in columns)} |" for i, name in enumerate(names)],
        "",
        "A sweep is one run of `iris_sweep`; the sensor `launch_sweep_trials` (the sensor daemon's",
        "loop, ~5 s) requests its trials, which run side by side through the queue (looked at every",
        "second: `dequeue_interval_seconds: 1` in the instance `iris-runs init` makes), each in a run",
        "worker forked from the code server's preloaded forkserver; `wait_for_trials` sees each end",
        "within half a second and `best_trial` registers the best. No asset backfill, so no",
        "30-second backfill-daemon loop between stages. What a 1-trial sweep adds to one run: a",
        "second run start (the sweep's own), the sensor's tick, the best trial's registration.",
    ]
    return "\n".join(lines) + "\n"


def _moments(instance: dg.DagsterInstance, sweep_run_id: str) -> list[float]:
    from iris_assets.tuning.ops import SWEEP_TAG

    trial_ids = [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(tags={SWEEP_TAG: sweep_run_id}))]
    records = {
        r.dagster_run.run_id: r for r in instance.get_run_records(dg.RunsFilter(run_ids=[sweep_run_id, *trial_ids]))
    }
    sweep = records[sweep_run_id]
    zero = sweep.create_timestamp.timestamp()
    trials = [records[run_id] for run_id in trial_ids]
    moments = [
        sweep.start_time,
        min(r.create_timestamp.timestamp() for r in trials),
        min(r.start_time or 0 for r in trials),
        max(r.end_time or 0 for r in trials),
        sweep.end_time,
    ]
    return [(moment or zero) - zero for moment in moments]
