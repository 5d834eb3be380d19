"""The Dagster webserver's GraphQL API, used the way the UI uses it."""

import json
import urllib.error
import urllib.request

from iris_assets import defs, groups
from iris_assets.tuning.launch import REPOSITORY_SELECTOR
from iris_harness.processes import wait_until

LAUNCH = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { id pipelineName } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"


class GraphQLServerError(AssertionError):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def graphql(port: int, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise GraphQLServerError(error.code, f"GraphQL answered {error.code}: {error.read()[:3000]!r}") from None
    assert "errors" not in body, body
    return body["data"]


def materialize_all_params() -> dict:
    """What the UI's "Materialize all" sends (on the global lineage or the `iris` group: the same
    assets, since sweeps are jobs): the implicit asset job, every asset and check."""
    graph = defs.resolve_asset_graph()
    keys = [key for key in graph.get_all_asset_keys() if graph.get(key).group_name == groups.PIPELINE]
    return {
        "mode": "default",
        "executionMetadata": {"tags": []},
        "runConfigData": "{}",
        "selector": {
            **REPOSITORY_SELECTOR,
            "pipelineName": "__ASSET_JOB",
            "assetSelection": [{"path": key.path} for key in sorted(keys)],
            "assetCheckSelection": [
                {"assetKey": {"path": check.asset_key.path}, "name": check.name}
                for check in sorted(graph.asset_check_keys)
                if check.asset_key in keys
            ],
        },
    }


def materialize_all(port: int, timeout: float = 300) -> tuple[str, str]:
    """Launch "Materialize all" and wait for the run to end: (run id, final status)."""
    launched = graphql(port, LAUNCH, {"executionParams": materialize_all_params()})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["id"]
    return run_id, wait_for_run(port, run_id, timeout)


REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { id } }
    ... on PythonError { message }
  }
}
"""
TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) { __typename ... on PythonError { message } ... on TerminateRunFailure { message } }
}
"""


def launch_job(port: int, job: str = "iris_pipeline", run_config: dict | None = None, tags: dict | None = None) -> str:
    """Launch a job as the Launchpad does; the run id."""
    params = {
        "mode": "default",
        "runConfigData": json.dumps(run_config or {}),
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
        "selector": {**REPOSITORY_SELECTOR, "pipelineName": job},
    }
    launched = graphql(port, LAUNCH, {"executionParams": params})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["id"]


# What psycopg2 says when a pooled connection's PostgreSQL has restarted.
STALE_CONNECTION = ("server closed the connection unexpectedly", "terminating connection")


def reexecute_from_failure(port: int, run_id: str) -> str:
    """The UI's "Re-execute from failure"; the new run's id.

    Clicked again, as a person would, when the webserver answers 500 because PostgreSQL
    restarted under one of its pooled connections: Dagster's webserver pools without a
    pre-ping, so the first query on each stale connection fails and the pool replaces it.
    Nothing was launched then: the failure is the launch's first read.
    """
    params = {"parentRunId": run_id, "strategy": "FROM_FAILURE"}
    for attempt in range(3):
        try:
            launched = graphql(port, REEXECUTE, {"params": params})["launchPipelineReexecution"]
            break
        except GraphQLServerError as error:
            if attempt == 2 or error.code < 500 or not any(marker in str(error) for marker in STALE_CONNECTION):
                raise
    assert launched["__typename"] == "LaunchRunSuccess", launched
    return launched["run"]["id"]


def terminate(port: int, run_id: str) -> None:
    """The UI's "Terminate" button."""
    answer = graphql(port, TERMINATE, {"runId": run_id})["terminateRun"]
    assert answer["__typename"] == "TerminateRunSuccess", answer


RUN_EVENTS = "query($id: ID!) { logsForRun(runId: $id) { __typename } }"


LOCATIONS = """
query { workspaceOrError { __typename ... on Workspace { locationEntries {
  name locationOrLoadError { __typename } } } } }
"""


def wait_for_code_location(port: int, timeout: float = 120) -> None:
    """Wait until the webserver has the code location loaded (after its code server restarted)."""

    def loaded():
        answer = _unless_server_error(port, LOCATIONS, {})
        entries = answer and answer["workspaceOrError"].get("locationEntries") or []
        return bool(entries) and all(
            (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation" for e in entries
        )

    wait_until(loaded, timeout=timeout, what="the webserver to load the code location", interval=1)


def wait_for_run(port: int, run_id: str, timeout: float = 300) -> str:
    """Wait for a run to end; its final status.

    A 5xx answer is polled past, as a person reloads the page: after a PostgreSQL
    restart the webserver answers 500 until its pooled connections are replaced.
    """

    def ended():
        answer = _unless_server_error(port, RUN_STATUS, {"id": run_id})
        status = answer and answer["runOrError"]["status"]
        return status in ("SUCCESS", "FAILURE", "CANCELED") and status

    return wait_until(ended, timeout=timeout, what=f"run {run_id} to end")


def _unless_server_error(port: int, query: str, variables: dict) -> dict | None:
    """The answer, or None when the webserver answered 5xx (polled past, as a person reloads)."""
    try:
        return graphql(port, query, variables)
    except GraphQLServerError as error:
        if error.code < 500:
            raise
        return None
