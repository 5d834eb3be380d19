"""The new-data sensor: retrain on each new, valid data file dropped in the landing folder.

``new_iris_data`` watches a landing folder (``$IRIS_LANDING_DIR``, default
``.iris_state/landing``) for CSV files of labelled Iris measurements. Each new,
valid file starts one materialisation of the whole graph trained on it; the run
key is the file's content digest, so the same content never trains twice, and
the cursor remembers what was seen, so a daemon restart neither replays nor loses
files. An invalid file starts nothing: the sensor says why and goes on.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg

from iris_assets import settings
from iris_assets.automation.jobs import iris_pipeline

LANDING_FILE_TAG = "iris/landing_file"
LANDING_DIGEST_TAG = "iris/landing_sha256"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dg.sensor(
    job=iris_pipeline,
    minimum_interval_seconds=settings.current().sensor_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Retrain on each new, valid CSV of Iris measurements dropped in the landing folder.",
)
def new_iris_data(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One run per new valid file; invalid files are reported in a SkipReason.

    A tick cannot both request runs and skip, so when valid and invalid files land
    together the valid ones start at once (the invalid ones are logged) and the
    invalid ones get their SkipReason on the next tick.
    """
    from iris_assets.data.schema import IrisDataError, load_iris_csv

    folder = settings.current().resolved_landing_dir
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
