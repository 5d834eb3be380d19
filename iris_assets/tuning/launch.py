"""Launching a sweep: declare its trials, then one backfill of the tuning group. CLI and Python.

    iris-sweep launch examples/sweep.yaml [--dagster-url URL] [--executor celery]
    iris-sweep declare examples/sweep.yaml      # only add the trials (partitions)

Both talk to the Dagster webserver's GraphQL API (``$DAGSTER_UI_URL``, the daemon
must run), the same calls the UI makes: a trial is added as a partition of
``iris_trials`` (one already declared is left alone: declaring a sweep again adds
only its new trials), and the backfill materialises ``sweep``, the file's trials
and ``best_trial``. From Python: ``launch_sweep("examples/sweep.yaml")`` returns the
backfill's id. In the UI, the same: add the partitions, select the tuning group,
"Materialize", pick the trials.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Optional

from iris_assets import settings
from iris_assets.tuning.assets import TRIALS, best_trial, sweep, trial_metrics, trial_model
from iris_assets.tuning.space import Sweep, SweepError, load

TUNING_ASSETS = (sweep, trial_model, trial_metrics, best_trial)

# The code location of workspace.yaml (and of the compose deployment), as the UI names it.
REPOSITORY_SELECTOR = {"repositoryLocationName": "iris_assets", "repositoryName": "__repository__"}

_ADD_PARTITION = """
mutation($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on PythonError { message }
    ... on DuplicateDynamicPartitionError { partitionName }
  }
}
"""
_LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
  }
}
"""


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


def declare(path: str, url: Optional[str] = None) -> tuple[list[str], list[str]]:
    """Add the sweep's trials as partitions: (every trial's key, the keys that were new)."""
    return _declare(load(path), url or settings.current().dagster_ui_url)


def _declare(sweep: Sweep, url: str) -> tuple[list[str], list[str]]:
    added = []
    for key in sweep.keys:
        answer = _graphql(url, _ADD_PARTITION, {"selector": REPOSITORY_SELECTOR, "name": TRIALS.name, "key": key})
        kind = answer["addDynamicPartition"]["__typename"]
        if kind == "AddDynamicPartitionSuccess":
            added.append(key)
        elif kind != "DuplicateDynamicPartitionError":
            raise LaunchError(f"trial {key!r} could not be declared: {answer['addDynamicPartition']}")
    return sweep.keys, added


def launch_sweep(path: str, url: Optional[str] = None, executor: Optional[str] = None) -> str:
    """Declare the sweep's trials and launch one backfill of the tuning group over them; its id."""
    sweep = load(path)
    url = url or settings.current().dagster_ui_url
    keys, _ = _declare(sweep, url)
    params: dict[str, Any] = {
        "assetSelection": [{"path": asset.key.path} for asset in TUNING_ASSETS],
        "partitionNames": keys,
        "title": f"sweep {sweep.name}",
    }
    if executor:
        params["runConfigData"] = json.dumps({"execution": {"config": {executor: {}}}})
    answer = _graphql(url, _LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise LaunchError(f"the backfill was refused: {answer}")
    return answer["backfillId"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="iris-sweep", description="Declare and launch hyperparameter sweeps.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("declare", "add the file's trials as partitions"),
        ("launch", "declare, then launch one backfill"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("file", help="a sweep file (YAML)")
        command.add_argument("--dagster-url", help="the Dagster webserver (default: $DAGSTER_UI_URL)")
        if name == "launch":
            command.add_argument("--executor", choices=["in_process", "multiprocess", "celery"], help="for every trial")
    args = parser.parse_args(argv)
    try:
        if args.command == "declare":
            keys, added = declare(args.file, args.dagster_url)
            print(f"{len(keys)} trial(s) declared, {len(added)} new: {', '.join(added) or 'none'}")
        else:
            backfill = launch_sweep(args.file, args.dagster_url, args.executor)
            url = (args.dagster_url or settings.current().dagster_ui_url).rstrip("/")
            print(f"backfill {backfill}: {url}/runs/b/{backfill}")
    except (SweepError, LaunchError, settings.SettingError) as error:
        print(f"iris-sweep: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
