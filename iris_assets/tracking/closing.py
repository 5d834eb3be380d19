"""Every path that ends an MLflow run, and the one Dagster -> MLflow status mapping they share.

The paths, from the common to the rare:

1. resource teardown in each step process (``settle``): any failed step ends the
   MLflow run FAILED, and once every planned step has succeeded it ends FINISHED;
2. the executor's parent after its last step (``settle_after_steps``, see
   ``execution.settling``): a step process killed mid-step tears nothing down;
3. the run-status sensors (``end_orphaned_run``, see ``tracking.sensors``): the
   run worker itself died, or the run was canceled;
4. the sweep (``end_orphaned_runs``): what the sensors could not reach (the
   tracking server was down when they fired, or no daemon ran).

All of them write only to runs still RUNNING, and never end a run another Dagster
run still writes to (a re-execution continuing it), so they agree in any order.
"""

from __future__ import annotations

from typing import Optional

import dagster as dg

from iris_assets.tracking import private, tags
from iris_assets.tracking.config import TrackingConfig
from iris_assets.tracking.election import Binding, announcements, delete_losing_candidates, engine_event_metadata
from iris_assets.tracking.store import mlflow_client, sqlite_database

# Metadata key of the engine event a step reports when it has ended the MLflow run: the
# run worker then knows there is nothing left to settle without opening the MLflow store.
SETTLED_METADATA_KEY = "mlflow_run_settled"


def mlflow_status(dagster_status: dg.DagsterRunStatus) -> str:
    """The MLflow run status that records a finished Dagster run's status."""
    from mlflow.entities import RunStatus

    by_dagster_status = {
        dg.DagsterRunStatus.SUCCESS: RunStatus.FINISHED,
        dg.DagsterRunStatus.FAILURE: RunStatus.FAILED,
        dg.DagsterRunStatus.CANCELED: RunStatus.KILLED,
        dg.DagsterRunStatus.CANCELING: RunStatus.KILLED,
    }
    return RunStatus.to_string(by_dagster_status[dagster_status])


def status_from_event_log(instance: dg.DagsterInstance, dagster_run: dg.DagsterRun) -> Optional[str]:
    """FAILED (KILLED if canceling) once any step failed, FINISHED once every planned step
    succeeded, else None: the run is not over."""
    events = instance.all_logs(
        dagster_run.run_id,
        of_type={
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.STEP_SKIPPED,
        },
    )
    if any(e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE for e in events):
        current = instance.get_run_by_id(dagster_run.run_id)
        canceling = current is not None and current.status == dg.DagsterRunStatus.CANCELING
        return mlflow_status(dg.DagsterRunStatus.CANCELING if canceling else dg.DagsterRunStatus.FAILURE)
    plan = instance.get_execution_plan_snapshot(dagster_run.execution_plan_snapshot_id)  # type: ignore[arg-type]
    done = {e.step_key for e in events}
    return mlflow_status(dg.DagsterRunStatus.SUCCESS) if set(plan.step_keys_to_execute) <= done else None


def settle(binding: Binding, instance: dg.DagsterInstance, dagster_run: dg.DagsterRun) -> None:
    """End the bound MLflow run if the Dagster event log says the Dagster run is over."""
    status = status_from_event_log(instance, dagster_run)
    if status is None:
        return
    binding.client.set_terminated(binding.run_id, status=status)
    if status == mlflow_status(dg.DagsterRunStatus.SUCCESS):
        delete_losing_candidates(binding.client, binding.experiment_id, binding.run_id, dagster_run.run_id)
    instance.report_engine_event(
        f"MLflow run {binding.run_id} ended {status}",
        dagster_run,
        private.engine_event_data({SETTLED_METADATA_KEY: dg.MetadataValue.text(status)}),  # type: ignore[arg-type]
    )


def _settled_by_a_step(instance: dg.DagsterInstance, dagster_run_id: str) -> bool:
    return any(SETTLED_METADATA_KEY in metadata for metadata in engine_event_metadata(instance, dagster_run_id))


def settle_after_steps(instance: dg.DagsterInstance, dagster_run: dg.DagsterRun, log=None) -> Optional[str]:
    """End the Dagster run's MLflow run from the run worker, once every step process is gone.

    Each step process ends the MLflow run when it tears the resource down, but a step
    process killed mid-step (SIGKILL, out of memory) tears nothing down; the executor
    calls this after its last step so the run still ends FAILED. Idempotent; returns
    the status written, if any. When a step has already ended the run (the common
    case) it returns at once, without importing MLflow in the run worker.
    """
    if _settled_by_a_step(instance, dagster_run.run_id):
        return None
    announced = announcements(instance, dagster_run.run_id)
    status = status_from_event_log(instance, dagster_run) if announced else None
    if status is None:
        return None
    mlflow_run_id, tracking_uri = announced[0]
    if tracking_uri is None:  # announced by an older version of this binding
        return None
    client = mlflow_client(tracking_uri)
    if client.get_run(mlflow_run_id).info.status != "RUNNING":
        return None
    client.set_terminated(mlflow_run_id, status=status)
    if log is not None:
        log.info(f"MLflow run {mlflow_run_id} ended {status} after the last step process exited")
    return status


def end_orphaned_run(
    instance: dg.DagsterInstance, dagster_run: dg.DagsterRun, config: Optional[TrackingConfig] = None
) -> list[str]:
    """End MLflow runs a finished Dagster run left RUNNING, with the status its end maps to.

    For the run-status sensors and the dead-run check: a killed step process or run
    worker, or a cancel, leaves no in-run code to end the MLflow run. The runs are
    the ones announced in the Dagster run's event log (each in the store it names)
    and, in ``config``'s experiment, any candidate tagged with the Dagster run that
    died before announcing itself. Returns the ids of the runs it ended.
    """
    if not dagster_run.is_finished:
        return []
    status = mlflow_status(dagster_run.status)
    candidates = {
        (a.mlflow_run_id, a.tracking_uri) for a in announcements(instance, dagster_run.run_id) if a.tracking_uri
    }
    if config is not None:
        client = mlflow_client(config.tracking_uri)
        experiment = client.get_experiment_by_name(config.experiment_name)
        if experiment is not None:
            candidates.update(
                (run.info.run_id, config.tracking_uri)
                for run in client.search_runs(
                    [experiment.experiment_id],
                    filter_string=f"tags.{tags.DAGSTER_RUN_ID_TAG} = '{dagster_run.run_id}' "
                    "AND attributes.status = 'RUNNING'",
                )
            )
    ended = []
    for run_id, tracking_uri in sorted(candidates):
        client = mlflow_client(tracking_uri)
        run = client.get_run(run_id)
        if run.info.status != "RUNNING" or _still_written(instance, run):
            continue
        client.set_terminated(run_id, status=status)
        ended.append(run_id)
    return ended


def end_orphaned_runs(config: TrackingConfig, instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """End every MLflow run of the experiment left RUNNING by Dagster runs that are over.

    The sweep behind the run-status sensors. Runs written by Dagster runs this
    instance does not know are left alone. Returns (MLflow run id, status written) pairs.
    """
    database = sqlite_database(config.tracking_uri)
    if database is not None and not database.exists():
        return []  # no store yet, nothing to end (and nothing created here)
    client = mlflow_client(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is None:
        return []
    ended = []
    for run in client.search_runs(
        [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        writers = _writers(instance, run)
        if not writers or any(w is None or not w.is_finished for w in writers):
            continue
        last = writers[-1]
        assert last is not None
        if last.status == dg.DagsterRunStatus.SUCCESS:
            # Succeeded, but the step that would have ended it could not reach the server.
            status = status_from_event_log(instance, last) or mlflow_status(last.status)
        else:
            status = mlflow_status(last.status)
        client.set_terminated(run.info.run_id, status=status)
        ended.append((run.info.run_id, status))
    return ended


def _writers(instance: dg.DagsterInstance, run) -> list[Optional[dg.DagsterRun]]:
    """The Dagster runs that wrote to an MLflow run, oldest first (None: unknown to this instance)."""
    ids = run.data.tags.get(tags.DAGSTER_RUN_IDS_TAG, run.data.tags.get(tags.DAGSTER_RUN_ID_TAG, "")).split()
    return [instance.get_run_by_id(i) for i in ids]


def _still_written(instance: dg.DagsterInstance, run) -> bool:
    return any(writer is not None and not writer.is_finished for writer in _writers(instance, run))
