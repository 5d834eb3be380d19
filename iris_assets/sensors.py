"""Sensors: retrain on new data files, and close MLflow runs that no in-run code could.

``new_iris_data`` watches a landing folder (``$IRIS_LANDING_DIR``, default
``.iris_state/landing``) for CSV files of labelled Iris measurements. Each new,
valid file starts one materialisation of the whole graph trained on it; the run
key is the file's content digest, so the same content never trains twice, and
the cursor remembers what was seen, so a daemon restart neither replays nor loses
files. An invalid file starts nothing: the sensor says why and goes on.

``close_mlflow_run_on_failure`` / ``..._on_cancel`` end the MLflow run of a Dagster
run that failed or was canceled in a way that left it RUNNING (a run worker
killed, a cancel that stopped the process). A run-status sensor sees each run
once, so ``close_orphaned_mlflow_runs`` sweeps for what they could not end (the
tracking server was down at the time, or the daemon was not running).
"""

import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from iris_assets.jobs import iris_pipeline
from iris_assets.local_state import state_dir
from iris_assets.mlflow_run import MlflowRun

LANDING_DIR_ENV_VAR = "IRIS_LANDING_DIR"
LANDING_FILE_TAG = "iris/landing_file"
LANDING_DIGEST_TAG = "iris/landing_sha256"


def landing_dir() -> Path:
    return Path(os.environ.get(LANDING_DIR_ENV_VAR) or state_dir() / "landing")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dg.sensor(
    job=iris_pipeline,
    minimum_interval_seconds=int(os.environ.get("IRIS_SENSOR_INTERVAL_SECONDS", "30")),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrain on each new, valid CSV of Iris measurements dropped in the landing folder.",
)
def new_iris_data(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One run per new valid file; invalid files are reported in a SkipReason.

    A tick cannot both request runs and skip, so when valid and invalid files land
    together the valid ones start at once (the invalid ones are logged) and the
    invalid ones get their SkipReason on the next tick.
    """
    from iris_assets.data import IrisDataError, load_iris_csv

    folder = landing_dir()
    # cursor: {file name: digest} of every file already acted on, valid or not.
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    run_requests, problems = [], {}
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        try:
            digest = _digest(path)
        except OSError as error:  # a directory named *.csv, a dangling link, no permission
            if seen.get(path.name) == "":  # already reported
                continue
            problems[path.name] = ("", f"{path}: cannot be read ({error.strerror or error})")
            continue
        if seen.get(path.name) == digest:
            continue
        try:
            load_iris_csv(str(path))
        except IrisDataError as error:
            problems[path.name] = (digest, str(error))
            continue
        seen[path.name] = digest
        run_requests.append(
            dg.RunRequest(
                run_key=digest,  # the same content never trains twice, whatever its name
                run_config={"ops": {"raw_data": {"config": {"csv_path": str(path.resolve())}}}},
                tags={LANDING_FILE_TAG: str(path.resolve()), LANDING_DIGEST_TAG: digest},
            )
        )
    for _, problem in problems.values():
        context.log.warning(f"Invalid file, no run started: {problem}")
    if run_requests:
        return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(seen, sort_keys=True))
    for name, (digest, _) in problems.items():
        seen[name] = digest
    reason = "; ".join(problem for _, problem in problems.values()) or f"no new CSV file in {folder}"
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=json.dumps(seen, sort_keys=True))


def _mlflow_closing_sensor(name: str, run_status: dg.DagsterRunStatus, ended: str, mlflow_status: str):
    @dg.run_status_sensor(
        name=name,
        run_status=run_status,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"End {mlflow_status} the MLflow run of a {ended} Dagster run if it was left RUNNING.",
    )
    def _close(context: dg.RunStatusSensorContext, mlflow: MlflowRun) -> None:
        for run_id in mlflow.end_orphaned_run(context.instance, context.dagster_run, mlflow_status):
            context.log.info(
                f"Ended MLflow run {run_id} {mlflow_status} (Dagster run {context.dagster_run.run_id})"
            )

    return _close


@dg.sensor(
    minimum_interval_seconds=int(os.environ.get("IRIS_ORPHAN_SWEEP_SECONDS", "30")),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="End MLflow runs left RUNNING by finished Dagster runs (what the run-status "
    "sensors missed: the tracking server was down, the daemon was not running).",
)
def close_orphaned_mlflow_runs(context: dg.SensorEvaluationContext, mlflow: MlflowRun) -> dg.SkipReason:
    # A tracking server that is down fails this tick; the next tick tries again.
    ended = mlflow.end_orphaned_runs(context.instance)
    for run_id, status in ended:
        context.log.info(f"Ended MLflow run {run_id} {status}")
    return dg.SkipReason(
        f"ended {len(ended)} MLflow run(s)" if ended else "no MLflow run left RUNNING by a finished Dagster run"
    )


close_mlflow_run_on_failure = _mlflow_closing_sensor(
    "close_mlflow_run_on_failure", dg.DagsterRunStatus.FAILURE, "failed", "FAILED"
)
close_mlflow_run_on_cancel = _mlflow_closing_sensor(
    "close_mlflow_run_on_cancel", dg.DagsterRunStatus.CANCELED, "canceled", "KILLED"
)
