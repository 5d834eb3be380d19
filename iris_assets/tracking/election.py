"""Choosing the one MLflow run of a Dagster run, through the Dagster event log.

Steps of one Dagster run may bind at the same moment in different processes or
hosts (parallel root assets under the multiprocess executor); "search by tag,
create if missing" then creates two runs. Here a step that finds no run announced
creates a *candidate* and announces it as an engine event in the Dagster run's
event log. The event log is shared by every executor and gives its events a
total order, so every step elects the same run: the first announced. Losing
candidates are deleted.

A re-execution *from failure* announces its parent's MLflow run instead, so it
continues that run; any other new Dagster run gets a new MLflow run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

import dagster as dg

from iris_assets.tracking import private, tags
from iris_assets.tracking.config import TrackingConfig
from iris_assets.tracking.redaction import without_credentials
from iris_assets.tracking.store import open_experiment

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Metadata keys of the engine events that announce candidate runs.
CANDIDATE_METADATA_KEY = "mlflow_run_candidate"
CANDIDATE_STORE_METADATA_KEY = "mlflow_tracking_uri"


class Announcement(NamedTuple):
    """An MLflow run proposed (or continued) for a Dagster run, as the event log records it."""

    mlflow_run_id: str
    # So the run worker and sensors can end the run without the resource (see closing);
    # never with credentials in it. None when announced by an older binding.
    tracking_uri: Optional[str]


def engine_event_metadata(instance: dg.DagsterInstance, dagster_run_id: str) -> Iterator[Mapping[str, Any]]:
    """The metadata of each engine event in a Dagster run's event log, in event-log order."""
    for entry in instance.all_logs(dagster_run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        metadata = getattr(event.event_specific_data, "metadata", None) if event else None
        if metadata:
            yield metadata


def announcements(instance: dg.DagsterInstance, dagster_run_id: str) -> list[Announcement]:
    """Every announcement in a Dagster run's event log, in event-log order."""
    found = []
    for metadata in engine_event_metadata(instance, dagster_run_id):
        if CANDIDATE_METADATA_KEY in metadata:
            store = metadata.get(CANDIDATE_STORE_METADATA_KEY)
            found.append(
                Announcement(str(metadata[CANDIDATE_METADATA_KEY].value), None if store is None else str(store.value))
            )
    return found


def announced_mlflow_runs(instance: dg.DagsterInstance, dagster_run_id: str) -> list[str]:
    """MLflow run ids announced in a Dagster run's event log, in event-log order."""
    return [announcement.mlflow_run_id for announcement in announcements(instance, dagster_run_id)]


def _announce(instance: dg.DagsterInstance, dagster_run: dg.DagsterRun, announcement: Announcement, verb: str) -> None:
    metadata = {CANDIDATE_METADATA_KEY: dg.MetadataValue.text(announcement.mlflow_run_id)}
    if announcement.tracking_uri is not None:
        metadata[CANDIDATE_STORE_METADATA_KEY] = dg.MetadataValue.text(without_credentials(announcement.tracking_uri))
    instance.report_engine_event(
        f"MLflow binding {verb} MLflow run {announcement.mlflow_run_id}",
        dagster_run,
        private.engine_event_data(metadata),  # type: ignore[arg-type]
    )


@dataclass
class Binding:
    """The MLflow run one Dagster run is bound to, as seen from one process."""

    client: MlflowClient
    config: TrackingConfig
    experiment_id: str
    run_id: str
    dagster_run_id: str
    run: Any  # the MLflow run as it was when bound (what MLflow's fluent API's active run holds)
    logged_models: dict[str, str] = field(default_factory=dict)  # name -> model id, logged here

    @property
    def run_url(self) -> str:
        return self.config.run_url(self.experiment_id, self.run_id)


def bind(config: TrackingConfig, instance: dg.DagsterInstance, dagster_run: dg.DagsterRun, log=None) -> Binding:
    """Elect (or continue) the MLflow run of ``dagster_run`` and record this Dagster run on it."""
    client, experiment_id = open_experiment(config)
    announced = announced_mlflow_runs(instance, dagster_run.run_id)
    if announced:
        run_id = announced[0]
    else:
        inherited = config.mlflow_run_id or _continued_mlflow_run(instance, dagster_run)
        if inherited:
            _announce(instance, dagster_run, Announcement(inherited, config.tracking_uri), "continues")
            run_id = inherited
            client.update_run(run_id, status="RUNNING")
        else:
            candidate = _create_run(client, experiment_id, config, dagster_run)
            _announce(instance, dagster_run, Announcement(candidate, config.tracking_uri), "proposes")
            run_id = announced_mlflow_runs(instance, dagster_run.run_id)[0]
            if run_id != candidate:
                # Another step announced first: everyone uses that one.
                client.delete_run(candidate)
    run = _record_dagster_run(client, run_id, dagster_run)
    if log is not None:
        log.info(
            f"MLflow run {run_id} in experiment {run.info.experiment_id} ({without_credentials(config.tracking_uri)})"
        )
    return Binding(
        client=client,
        config=config,
        experiment_id=run.info.experiment_id,
        run_id=run_id,
        dagster_run_id=dagster_run.run_id,
        run=run,
    )


def _continued_mlflow_run(instance: dg.DagsterInstance, dagster_run: dg.DagsterRun) -> Optional[str]:
    """The MLflow run of the chain this run re-executes from failure: its parent's, else (a retry
    that failed before any step bound one) the nearest ancestor's, as long as each link of the
    chain re-executes its parent from failure."""
    current: Optional[dg.DagsterRun] = dagster_run
    while current is not None and current.parent_run_id and _is_from_failure(instance, current):
        announced = announced_mlflow_runs(instance, current.parent_run_id)
        if announced:
            return announced[0]
        current = instance.get_run_by_id(current.parent_run_id)
    return None


def _is_from_failure(instance: dg.DagsterInstance, dagster_run: dg.DagsterRun) -> bool:
    """Whether this run re-executes its parent from failure.

    The UI, the CLI and automatic run retries tag such runs; the Python API does
    not, so for an untagged run compare its steps with the ones Dagster itself
    derives for a from-failure re-execution of the parent.
    """
    run_tags = dagster_run.tags
    if run_tags.get(private.RESUME_RETRY_TAG) == "true":
        return True
    if run_tags.get(private.ASSET_RESUME_RETRY_TAG) == "true":
        return True
    assert dagster_run.parent_run_id is not None
    parent = instance.get_run_by_id(dagster_run.parent_run_id)
    if parent is None or not parent.is_failure_or_canceled or dagster_run.step_keys_to_execute is None:
        return False
    return private.from_failure_step_keys(instance, parent) == set(dagster_run.step_keys_to_execute)


def _run_name(config: TrackingConfig, dagster_run: dg.DagsterRun) -> str:
    """The configured ``run_name``, else the job's name; for the implicit asset job ("Materialize" in
    the UI), what it materialises: one asset's name, else ``asset_job_run_name``."""
    if config.run_name:
        return config.run_name
    if dagster_run.job_name != private.IMPLICIT_ASSET_JOB_NAME:
        return dagster_run.job_name
    selection = dagster_run.asset_selection or set()
    if len(selection) == 1:
        return next(iter(selection)).to_user_string()
    return config.asset_job_run_name


def _create_run(client: MlflowClient, experiment_id: str, config: TrackingConfig, dagster_run: dg.DagsterRun) -> str:
    run_tags = {
        tags.DAGSTER_RUN_ID_TAG: dagster_run.run_id,
        tags.DAGSTER_RUN_IDS_TAG: dagster_run.run_id,
        tags.JOB_NAME_TAG: dagster_run.job_name,
        "mlflow.runName": f"{_run_name(config, dagster_run)}-{dagster_run.run_id[:8]}",
        "mlflow.source.name": "dagster",
        tags.DAGSTER_RUN_URL_TAG: config.dagster_run_url(dagster_run.run_id),
    }
    run_tags.update({k: v for k, v in dagster_run.tags.items() if k.startswith(tags.COPIED_DAGSTER_TAGS)})
    if dagster_run.parent_run_id:
        run_tags[tags.PARENT_RUN_ID_TAG] = dagster_run.parent_run_id
        run_tags[tags.ROOT_RUN_ID_TAG] = dagster_run.root_run_id or dagster_run.parent_run_id
    if config.parent_run_id:
        run_tags["mlflow.parentRunId"] = config.parent_run_id
    run_tags.update(config.extra_tags)
    return client.create_run(experiment_id, tags=run_tags).info.run_id


def _record_dagster_run(client: MlflowClient, run_id: str, dagster_run: dg.DagsterRun):
    """Add this Dagster run to the MLflow run's list of writers (idempotent); return the run."""
    run = client.get_run(run_id)
    current = run.data.tags.get(tags.DAGSTER_RUN_IDS_TAG, "").split()
    if dagster_run.run_id not in current:
        client.set_tag(run_id, tags.DAGSTER_RUN_IDS_TAG, " ".join([*current, dagster_run.run_id]))
        if dagster_run.parent_run_id:
            client.set_tag(run_id, tags.PARENT_RUN_ID_TAG, dagster_run.parent_run_id)
            client.set_tag(run_id, tags.ROOT_RUN_ID_TAG, dagster_run.root_run_id or dagster_run.parent_run_id)
    return run


def delete_losing_candidates(client: MlflowClient, experiment_id: str, winner: str, dagster_run_id: str) -> None:
    """Delete runs of this Dagster run other than the elected one.

    Losers delete their own candidate right after the election; this also removes a
    candidate whose process died between creating it and announcing it.
    """
    for run in client.search_runs(
        [experiment_id], filter_string=f"tags.{tags.DAGSTER_RUN_ID_TAG} = '{dagster_run_id}'"
    ):
        if run.info.run_id != winner:
            client.delete_run(run.info.run_id)
