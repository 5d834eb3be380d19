"""The new-data sensor: retrain on each new, valid data file dropped in the landing folder.

``new_iris_data`` watches a landing folder (``$IRIS_LANDING_DIR``, default
``.iris_state/landing``) for CSV files of labelled Iris measurements. Each new,
valid file starts one materialisation of the whole graph trained on it; the run
key is the file's content digest, so the same content never trains twice, and
the cursor remembers what was seen, so a daemon restart neither replays nor loses
files. An invalid file starts nothing: the sensor says why and goes on.
"""

import json

import dagster as dg

from iris_assets import settings
from iris_assets.automation.jobs import iris_pipeline
from iris_assets.automation.landing import csv_entries, new_files

LANDING_FILE_TAG = "iris/landing_file"
LANDING_DIGEST_TAG = "iris/landing_sha256"


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
    current = settings.current()
    folder = current.resolved_landing_dir
    entries = csv_entries(folder)
    # cursor: {file name: [fingerprint, sha256, "invalid" or ""]} of the files in the folder already
    # judged. (A cursor of an earlier version maps names to digests: those files are read once more.)
    stored = json.loads(context.cursor) if context.cursor else {}
    seen = {name: value if isinstance(value, list) else ["", value, ""] for name, value in stored.items()}
    seen = {name: value for name, value in seen.items() if name in {e.name for e in entries}}
    run_requests, problems = [], []
    for judged in new_files(folder, entries, seen, current.max_csv_bytes):
        if judged.problem is not None:
            problems.append(judged)
            continue
        previous = seen.get(judged.name)
        seen[judged.name] = judged.to_cursor()
        if previous is not None and previous[1] == judged.sha256:
            continue  # touched, not changed
        path = str((folder / judged.name).resolve())
        run_requests.append(
            dg.RunRequest(
                run_key=judged.sha256,  # the same content never trains twice, whatever its name
                run_config={"ops": {"raw_data": {"config": {"csv_path": path, "expected_sha256": judged.sha256}}}},
                tags={LANDING_FILE_TAG: path, LANDING_DIGEST_TAG: judged.sha256},
            )
        )
    for judged in problems:
        context.log.warning(f"Invalid file, no run started: {judged.problem}")
    if run_requests:
        return dg.SensorResult(run_requests=run_requests, cursor=json.dumps(seen, sort_keys=True))
    for judged in problems:
        seen[judged.name] = judged.to_cursor()
    reason = "; ".join(str(j.problem) for j in problems) or f"no new CSV file in {folder}"
    return dg.SensorResult(skip_reason=dg.SkipReason(reason), cursor=json.dumps(seen, sort_keys=True))
