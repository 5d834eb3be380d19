"""The `iris-runs` command: runs and MLflow runs that nothing else can end, without a daemon.

    iris-runs close              # runs whose worker died: FAILED (or CANCELED); MLflow runs left RUNNING: ended
    iris-runs reexecute RUN_ID   # re-execute a failed run from failure: the same MLflow run continues
    iris-runs init               # create the instance (folder, dagster.yaml, storage) once; install.sh runs it

It works on the Dagster instance of $DAGSTER_HOME (what `dg launch`, the UI and the
daemon share), else the project's (.iris_state/dagster_home), and the tracking store
of the environment. With a
daemon running, the sensors ``close_dead_runs`` and ``close_orphaned_mlflow_runs``
do what `close` does, every 30 seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import dagster as dg

from iris_assets import dagster_private, settings


class RunsCommandError(Exception):
    """What the command cannot do, in one line."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="iris-runs", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("close", help="close runs whose worker died, and MLflow runs left RUNNING by finished runs")
    reexecute = commands.add_parser("reexecute", help="re-execute a failed run from failure, continuing its MLflow run")
    reexecute.add_argument("run_id")
    commands.add_parser("init", help="create the instance's storage (a new DAGSTER_HOME), once")
    args = parser.parse_args(argv)
    try:
        if args.command == "init":
            initialise()
            return 0
        with _instance() as instance:
            if args.command == "close":
                close(instance)
            else:
                return reexecute_from_failure(instance, args.run_id)
    except (RunsCommandError, settings.SettingError) as error:
        print(f"iris-runs: error: {error}", file=sys.stderr)
        return 2
    return 0


def _instance() -> dg.DagsterInstance:
    home = settings.use_project_instance()
    if not home.is_dir():
        raise RunsCommandError(f"no Dagster instance at {home}: create it with `.venv/bin/iris-runs init`")
    return dg.DagsterInstance.get()


def close(instance: dg.DagsterInstance) -> None:
    from iris_assets.project_mlflow import tracking_config
    from iris_assets.runs.workers import close_dead_runs
    from iris_assets.tracking.closing import end_orphaned_runs

    for closed in close_dead_runs(instance):
        ended = ", ".join(closed.mlflow_runs) or "none left RUNNING"
        print(
            f"run {closed.run_id}: worker {closed.worker} is gone; marked {closed.status}; MLflow run(s) ended: {ended}"
        )
    for mlflow_run_id, status in end_orphaned_runs(tracking_config(), instance):
        print(f"MLflow run {mlflow_run_id}: left RUNNING by a finished Dagster run; ended {status}")


def reexecute_from_failure(instance: dg.DagsterInstance, run_id: str) -> int:
    from iris_assets.automation.jobs import RECONSTRUCTABLE_JOBS
    from iris_assets.runs.workers import close_dead_runs

    close_dead_runs(instance)  # a run whose worker died is first marked failed
    parent = instance.get_run_by_id(run_id)
    if parent is None:
        raise RunsCommandError(f"no run {run_id!r} in the instance at $DAGSTER_HOME")
    if not parent.is_failure_or_canceled:
        raise RunsCommandError(
            f"run {run_id} is {parent.status.value}: only a failed or canceled run is re-executed from failure"
        )
    target = RECONSTRUCTABLE_JOBS.get(parent.job_name)
    if target is None:
        raise RunsCommandError(
            f"run {run_id} ran job {parent.job_name!r}; this command re-executes {sorted(RECONSTRUCTABLE_JOBS)}"
        )
    result = dg.execute_job(
        dg.reconstructable(target),
        instance=instance,
        run_config=parent.run_config,
        tags={dagster_private.RESUME_RETRY_TAG: "true"},
        reexecution_options=dg.ReexecutionOptions.from_failure(run_id, instance),
    )
    print(f"run {result.run_id} (re-execution of {run_id} from failure): {'SUCCESS' if result.success else 'FAILURE'}")
    return 0 if result.success else 1


INITIALISED = ".iris-initialised"  # in a home whose storage exists


def initialise() -> Path:
    """Create the instance at $DAGSTER_HOME (else the project's): its folder, a `dagster.yaml`
    unless it has one, and its storage (run, event-log and schedule databases), once.

    Dagster creates a new sqlite instance's tables on first use; several processes
    doing that at once (five `dg launch` on a new home) race in the schema migration
    and can leave the instance unusable. This runs once per home, under a file lock,
    before anything else uses it (scripts/install.sh, scripts/env.sh). A `dagster.yaml`
    an earlier version wrote, unedited, is brought up to date each time.
    """
    import fcntl

    home = settings.use_project_instance()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    with open(home / ".iris-init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if config.exists() and _head(config) in settings.EARLIER_LOCAL_DAGSTER_YAMLS:
            config.write_text(settings.LOCAL_DAGSTER_YAML)
        if (home / INITIALISED).exists():
            return home
        if not config.exists():
            config.write_text(settings.LOCAL_DAGSTER_YAML)
        with dg.DagsterInstance.get() as instance:
            instance.get_runs(limit=1)
            instance.all_instigator_state()
            instance.get_latest_materialization_event(dg.AssetKey("iris_assets_init"))
            instance.event_log_storage.get_pool_limits()
        (home / INITIALISED).touch()
    return home


def _head(path: Path) -> str:
    """The start of a file, enough to compare with a few hundred bytes (whatever its size)."""
    with open(path, "rb") as file:
        return file.read(4096).decode("utf-8", errors="replace")


if __name__ == "__main__":
    sys.exit(main())
