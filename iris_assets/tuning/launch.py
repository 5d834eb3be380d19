"""Launching a sweep: one run of the job ``iris_sweep`` with the sweep file as its config. CLI and Python.

    iris-sweep launch examples/sweep.yaml [--wait] [--dagster-url URL] [--executor celery]

It talks to the Dagster webserver's GraphQL API (``$DAGSTER_UI_URL``; the daemon must
run: it starts the trials), making the UI's own calls: the Launchpad of ``iris_sweep``
with the file's content under ``ops.open_sweep.config``. Before launching anything it
checks the file and that the pipeline has run (the trials need its ``splits``), each
refusal in one line, as is a webserver none of whose code locations holds ``iris_sweep`` (naming
the locations it has). ``--wait`` follows the sweep: the trials' counts (queued, running,
done) whenever they change until the trials are over, a line per finished trial, then the
best trial, its registry version and the promotion decision; the exit status is 1 when
the sweep failed, naming the failed trials. From Python: ``launch_sweep(path)`` returns
the sweep's run id; ``wait_for_sweep(run_id)`` follows it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Optional

from iris_assets import settings
from iris_assets.datasets.definition import DatasetDefinitionError
from iris_assets.tuning.ops import SWEEP_TAG
from iris_assets.tuning.space import SweepError, load
from iris_assets.tuning.target import IRIS_TARGET, SweepTarget, target_of

# The code location of workspace.yaml, of `dg dev` (pyproject.toml's code_location_name) and of the
# compose deployment, as the UI names it. A webserver may still name it otherwise (a workspace of
# its own, a dg of another version: after the checkout's folder), so a sweep asks the webserver
# which location holds its job (``job_selector``).
REPOSITORY_SELECTOR = {"repositoryLocationName": "iris_assets", "repositoryName": "__repository__"}

_LAUNCH = """
mutation($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { id } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
_SPLITS = """
query($path: [String!]!) { assetOrError(assetKey: {path: $path}) {
  __typename ... on Asset { assetMaterializations(limit: 1) { runId } } } }
"""
_RUN = """
query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status rootRunId }
  ... on PythonError { message } } }
"""
_LOGS = """
query($id: ID!, $cursor: String) { logsForRun(runId: $id, afterCursor: $cursor) {
  __typename ... on EventConnection { cursor hasMore events { __typename
    ... on MessageEvent { message stepKey }
    ... on ErrorEvent { error { message } } } } } }
"""
_WORKSPACE = """
query { workspaceOrError { __typename ... on PythonError { message }
  ... on Workspace { locationEntries { name locationOrLoadError { __typename
    ... on PythonError { message }
    ... on RepositoryLocation { repositories { name pipelines { name } } } } } } } }
"""
_TRIALS = """
query($filter: RunsFilter!) { runsOrError(filter: $filter) { __typename
  ... on Runs { results { status } } ... on PythonError { message } } }
"""
_OVER = {"SUCCESS", "FAILURE", "CANCELED"}
_QUEUED = {"QUEUED", "NOT_STARTED", "MANAGED"}
_FAILURE_PREFIX = "dagster._core.definitions.events.Failure: "


class LaunchError(Exception):
    """What stopped a sweep from launching, in one line."""


def _graphql(url: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"{url.rstrip('/')}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError) as error:
        raise LaunchError(f"the Dagster webserver at {url} cannot be reached ({error})") from None
    if body.get("errors"):
        raise LaunchError(f"the Dagster webserver at {url} answered: {body['errors'][0].get('message')}")
    return body["data"]


def sweep_config(path: str, executor: Optional[str] = None) -> dict[str, Any]:
    """The run config of the sweep job (``iris_sweep``, or its dataset's) for a sweep file (validated: a bad
    file is refused here)."""
    import yaml

    sweep = load(path)
    with open(path) as file:
        spec = yaml.safe_load(file)
    config = {"name": sweep.name, **{k: spec[k] for k in ("grid", "random") if k in spec}}
    if executor:
        config["executor"] = executor
    return {"ops": {sweep_target(path).open_sweep: {"config": config}}}


def sweep_target(path: str) -> SweepTarget:
    """The pipeline a sweep file trains for (its ``dataset``, default Iris)."""
    try:
        return target_of(load(path).dataset)
    except DatasetDefinitionError as error:
        raise SweepError(f"{path}: {error}") from None


def launch_sweep(path: str, url: Optional[str] = None, executor: Optional[str] = None) -> str:
    """Launch one run of the sweep job of the file's dataset (``iris_sweep`` for Iris); its run id. Refuses,
    launching nothing, when the file is bad or the pipeline never ran."""
    url = url or settings.current().dagster_ui_url
    run_config = sweep_config(path, executor)
    target = sweep_target(path)
    selector = job_selector(url, target.sweep_job)
    splits = _graphql(url, _SPLITS, {"path": list(target.splits.path)})["assetOrError"]
    if splits.get("__typename") != "Asset" or not splits.get("assetMaterializations"):
        raise LaunchError(target.no_splits)
    params = {
        "mode": "default",
        "selector": {**selector, "pipelineName": target.sweep_job},
        "runConfigData": json.dumps(run_config),
        "executionMetadata": {"tags": []},
    }
    answer = _graphql(url, _LAUNCH, {"executionParams": params})["launchPipelineExecution"]
    if answer["__typename"] != "LaunchRunSuccess":
        raise LaunchError(f"the sweep was refused: {answer}")
    return answer["run"]["id"]


def job_selector(url: str, job: str) -> dict[str, str]:
    """The code location and repository of the webserver at ``url`` that hold ``job``."""
    return select_repository(_graphql(url, _WORKSPACE, {})["workspaceOrError"], job, url)


def select_repository(workspace: dict, job: str, url: str) -> dict[str, str]:
    """From the webserver's ``workspaceOrError``: the (location, repository) holding ``job``. The
    project's location name when several hold it; refused in one line when none does."""
    if workspace.get("__typename") != "Workspace":
        raise LaunchError(f"the Dagster webserver at {url} has no workspace: {_one_line(workspace.get('message'))}")
    holding, seen = [], []
    for entry in workspace["locationEntries"]:
        location = entry.get("locationOrLoadError") or {}
        if location.get("__typename") != "RepositoryLocation":
            seen.append(f"{entry['name']} (not loaded: {_one_line(location.get('message'))})")
            continue
        seen.append(entry["name"])
        for repository in location["repositories"]:
            if job in {pipeline["name"] for pipeline in repository["pipelines"]}:
                holding.append({"repositoryLocationName": entry["name"], "repositoryName": repository["name"]})
    if len(holding) > 1:
        holding = [selector for selector in holding if selector == REPOSITORY_SELECTOR] or holding
    if len(holding) == 1:
        return holding[0]
    if holding:
        names = ", ".join(f"{s['repositoryLocationName']}/{s['repositoryName']}" for s in holding)
        raise LaunchError(f"several code locations of the Dagster webserver at {url} hold the job {job}: {names}")
    raise LaunchError(
        f"no code location of the Dagster webserver at {url} holds the job {job} (locations: "
        f"{', '.join(seen) or 'none'}): start it from this repository (iris-ui, dg dev, or -w workspace.yaml)"
    )


def _one_line(message: Optional[str], limit: int = 200) -> str:
    line = " ".join((message or "no message").split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# What the sweep's run logs as it goes (tuning/ops.py): a line per trial, then the decision.
_PROGRESS = ("trial ", "best trial ")


def trial_counts(url: str, sweep_run_id: str, trials: Optional[int] = None, target: SweepTarget = IRIS_TARGET) -> str:
    """``trials: 6 queued, 0 running, 0 done`` (and failed, if any), from the runs of the trial
    job tagged with the sweep; with ``trials`` known, those the sensor has not started yet count
    as queued."""
    answer = _graphql(
        url,
        _TRIALS,
        {"filter": {"pipelineName": target.trial_job, "tags": [{"key": SWEEP_TAG, "value": sweep_run_id}]}},
    )["runsOrError"]
    statuses = [run["status"] for run in answer.get("results", [])]
    done = statuses.count("SUCCESS")
    failed = sum(1 for status in statuses if status in ("FAILURE", "CANCELED"))
    queued = sum(1 for status in statuses if status in _QUEUED)
    running = len(statuses) - done - failed - queued
    if trials is not None:
        queued = max(queued, trials - running - done - failed)
    return f"trials: {queued} queued, {running} running, {done} done" + (f", {failed} failed" if failed else "")


def wait_for_sweep(
    run_id: str,
    url: Optional[str] = None,
    out: Callable[[str], None] = print,
    trials: Optional[int] = None,
    target: SweepTarget = IRIS_TARGET,
) -> str:
    """Follow a sweep run to its end, passing on its progress lines (the trials' counts whenever they
    change, until the trials are over; each finished trial; the decision); its final status."""
    url = url or settings.current().dagster_ui_url
    cursor: Optional[str] = None
    counts: Optional[str] = None
    while True:
        run = _graphql(url, _RUN, {"id": run_id})["runOrError"]
        status = run.get("status")
        if status not in _OVER:
            # The trials carry the id of the sweep's first run (a re-execution continues that sweep).
            now = trial_counts(url, run.get("rootRunId") or run_id, trials, target)
            if now != counts:
                out(now)
                counts = now
        while True:
            logs = _graphql(url, _LOGS, {"id": run_id, "cursor": cursor})["logsForRun"]
            cursor = logs.get("cursor", cursor)
            for event in logs.get("events", []):
                message = event.get("message") or ""
                if event["__typename"] == "LogMessageEvent" and message.startswith(_PROGRESS):
                    out(message)
                elif (event.get("error") or {}).get("message"):
                    # A step's failure, or the run's own (its launch or run worker failed): never a bare FAILURE.
                    reason = event["error"]["message"].strip().removeprefix(_FAILURE_PREFIX)
                    out(f"{event.get('stepKey') or 'the sweep run'} failed: {reason}")
            if not logs.get("hasMore"):
                break
        if status in _OVER:
            return status
        time.sleep(1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="iris-sweep", description="Launch hyperparameter sweeps.")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser(
        "launch", help="launch one run of iris_sweep (or the file's dataset's sweep job) for the file"
    )
    command.add_argument("file", help="a sweep file (YAML)")
    command.add_argument("--dagster-url", help="the Dagster webserver (default: $DAGSTER_UI_URL)")
    command.add_argument("--executor", choices=["in_process", "multiprocess", "celery"], help="for every trial")
    command.add_argument("--wait", action="store_true", help="follow the sweep to its end")
    args = parser.parse_args(argv)
    try:
        url = (args.dagster_url or settings.current().dagster_ui_url).rstrip("/")
        run_id = launch_sweep(args.file, url, args.executor)
        print(f"sweep {run_id}: {url}/runs/{run_id}", flush=True)
        if not args.wait:
            return 0
        trials = len(load(args.file).keys)
        status = wait_for_sweep(run_id, url, lambda line: print(line, flush=True), trials, sweep_target(args.file))
        print(f"sweep {run_id}: {status}")
        return 0 if status == "SUCCESS" else 1
    except (SweepError, LaunchError, settings.SettingError) as error:
        print(f"iris-sweep: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
