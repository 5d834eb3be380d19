"""Guards on the private Dagster APIs in iris_assets/dagster_private.py.

Each test names the private API it guards, so a Dagster upgrade that renames or
changes one fails here with that name, before any run depends on it.
"""

import dagster as dg
import pytest

from iris_assets import dagster_private


def test_resume_retry_tags_keep_their_values():
    """dagster._core.storage.tags.RESUME_RETRY_TAG / ASSET_RESUME_RETRY_TAG: the UI, CLI and run
    retries tag from-failure re-executions with them; the binding matches them on stored runs."""
    assert dagster_private.RESUME_RETRY_TAG == "dagster/is_resume_retry", (
        "Dagster renamed RESUME_RETRY_TAG: re-executions from failure would no longer continue "
        "their parent's MLflow run; update iris_assets/dagster_private.py"
    )
    assert dagster_private.ASSET_RESUME_RETRY_TAG == "dagster/is_asset_resume_retry", (
        "Dagster renamed ASSET_RESUME_RETRY_TAG; update iris_assets/dagster_private.py"
    )


def test_engine_event_data_carries_metadata_into_the_event_log(instance):
    """dagster._core.events.EngineEventData: announcements are engine events with metadata."""
    from iris_assets.tracking.election import Announcement, announcements

    run = instance.create_run_for_job(job_def=_job())
    instance.report_engine_event(
        "probe",
        run,
        dagster_private.engine_event_data(
            {
                "mlflow_run_candidate": dg.MetadataValue.text("abc123"),
                "mlflow_tracking_uri": dg.MetadataValue.text("sqlite:///x.db"),
            }
        ),
    )
    assert announcements(instance, run.run_id) == [Announcement("abc123", "sqlite:///x.db")], (
        "EngineEventData no longer carries metadata into the event log: the MLflow run election "
        "reads it there; update iris_assets/dagster_private.py"
    )


@dg.op
def _first() -> int:
    return 1


@dg.op
def _second(value: int) -> int:
    raise RuntimeError("fails on purpose")


@dg.op
def _third(value: int) -> int:
    return value


@dg.job
def _chain():
    _third(_second(_first()))


def _job() -> dg.JobDefinition:
    return _chain


def test_from_failure_step_keys_are_the_failed_step_and_what_follows(instance):
    """dagster._core.execution.plan.state.KnownExecutionState.build_resume_retry_reexecution:
    the steps a from-failure re-execution runs."""
    result = dg.execute_job(dg.reconstructable(_job), instance=instance, raise_on_error=False)
    assert not result.success
    parent = instance.get_run_by_id(result.run_id)
    try:
        steps = dagster_private.from_failure_step_keys(instance, parent)
    except (AttributeError, ImportError, TypeError) as error:
        pytest.fail(f"KnownExecutionState.build_resume_retry_reexecution changed ({error}); update dagster_private")
    assert steps == {"_second", "_third"}


def test_backfill_and_partition_tags_keep_their_values():
    """dagster._core.storage.tags.BACKFILL_ID_TAG / PARTITION_NAME_TAG: the IO manager finds a
    backfill's runs by the first, and a sweep names its trials by the second (their partition keys)."""
    assert dagster_private.BACKFILL_ID_TAG == "dagster/backfill", (
        "Dagster renamed BACKFILL_ID_TAG: a backfill's runs could no longer find its values; update iris_assets/dagster_private.py"
    )
    assert dagster_private.PARTITION_NAME_TAG == "dagster/partition", (
        "Dagster renamed PARTITION_NAME_TAG: sweeps could no longer name their trials; "
        "update iris_assets/dagster_private.py"
    )


def test_step_storage_modules_still_exist():
    """The dagster._core.storage modules the multiprocess forkserver preloads."""
    import importlib

    for name in dagster_private.STEP_STORAGE_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise AssertionError(
                f"Dagster no longer has {name}: step processes would import their storage again; "
                "update iris_assets/dagster_private.py"
            ) from error


def test_code_server_starts_run_workers_from_the_context_it_stores():
    """dagster._grpc.server.DagsterApiServer._mp_ctx: the code server's constructor stores the
    multiprocessing context (spawn) and StartRun starts each run worker from it, the attribute
    execution/run_workers.py answers for with a preloaded forkserver."""
    import inspect

    from dagster._grpc import server

    assert "self._mp_ctx = multiprocessing.get_context(" in inspect.getsource(server.DagsterApiServer.__init__), (
        "DagsterApiServer no longer stores its multiprocessing context as _mp_ctx: run workers would be "
        "spawned again; update iris_assets/dagster_private.py"
    )
    assert "self._mp_ctx.Process(" in inspect.getsource(server.DagsterApiServer.StartRun), (
        "DagsterApiServer.StartRun no longer starts run workers from _mp_ctx; update iris_assets/dagster_private.py"
    )


def test_the_implicit_asset_job_has_the_name_the_binding_renames():
    """MLflow runs of "Materialize all" are named after the pipeline, recognised by this job name."""
    from iris_assets import dagster_private
    from iris_assets.definitions import defs

    assert defs.resolve_implicit_global_asset_job_def().name == dagster_private.IMPLICIT_ASSET_JOB_NAME


def test_celery_step_reads_the_message_dagster_celery_sends(instance):
    """dagster._grpc.types.ExecuteStepArgs, packed by dagster-celery's _submit_task as the task's
    ``execute_step_args_packed``: the worker reads run and step from it before executing
    (execution/step_task.py drops a step whose run has ended)."""
    import inspect

    from dagster._grpc.types import ExecuteStepArgs
    from dagster._serdes import pack_value
    from dagster_celery import executor

    source = inspect.getsource(executor._submit_task)
    assert "ExecuteStepArgs(" in source and "execute_step_args_packed=pack_value(execute_step_args)" in source, (
        "dagster-celery no longer sends a packed ExecuteStepArgs: workers would not know a step's run "
        "before executing it; update dagster_private.celery_step"
    )
    sent = ExecuteStepArgs(
        job_origin=dg.reconstructable(_a_job).get_python_origin(),
        run_id="run-1",
        step_keys_to_execute=["model"],
        instance_ref=instance.get_ref(),
        print_serialized_events=True,
    )
    step = dagster_private.celery_step(pack_value(sent))
    assert (step.run_id, step.step_key, step.instance_ref) == ("run-1", "model", instance.get_ref())


@dg.op
def _an_op() -> None:
    pass


@dg.job
def _a_job() -> None:
    _an_op()


def test_step_config_class_and_step_config_build_what_a_step_is_handed():
    """OpDefinition.compute_fn (a DecoratedOpFunction: has_config_arg, get_config_arg) and
    Config._get_non_default_public_field_values_cls: config_errors builds each step's dg.Config
    before the first step from them, as Dagster's construct_config_from_context does in the step."""
    from iris_assets import defs
    from iris_assets.training.assets import ModelConfig

    job = defs.resolve_job_def("iris_pipeline")
    assert dagster_private.step_config_class(job.graph.node_named("model").definition) is ModelConfig, (
        "Dagster changed how an op's config argument is found; update iris_assets/dagster_private.py"
    )
    assert dagster_private.step_config_class(job.graph.node_named("metrics").definition) is None
    processed = dg.validate_run_config(job, {"ops": {"model": {"config": {"family": "svm", "C": 2}}}})
    config = dagster_private.step_config(ModelConfig, processed["ops"]["model"]["config"])
    assert (config.family, config.C) == ("svm", 2.0)
    # Fields equal to their default are left out, as in the step (a Literal's default is kept, which
    # the model's family rule allows for): a forest's defaults do not count as given to an svm.
    assert {"family", "C"} <= config.model_fields_set and "n_estimators" not in config.model_fields_set


def test_mlflow_s_active_run_stack_and_the_lookups_the_binding_wraps(tracking_uri):
    """tracking/fluent.py puts the bound run on MLflow's per-thread active-run stack and wraps start_run /
    end_run where MLflow's own code looks them up: a change to either fails here, by name."""
    import inspect

    import mlflow

    from iris_assets.tracking import private

    fluent = private.fluent_module()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run() as run:
            assert private.active_run_stack()[-1].info.run_id == run.info.run_id == mlflow.active_run().info.run_id
            assert fluent._active_run_stack.get() is private.active_run_stack()  # one list per thread
        assert private.active_run_stack() == []
    finally:
        mlflow.set_tracking_uri(None)
    # MLflow's fluent calls start a run through the module's start_run; its exit hook and a run's `with`
    # block end one through the module's end_run (names looked up at call time, so wrappable).
    assert "start_run()" in inspect.getsource(fluent._get_or_start_run)
    assert "end_run()" in inspect.getsource(fluent._safe_end_run)
    assert "end_run(" in inspect.getsource(fluent.ActiveRun.__exit__)
    assert issubclass(fluent.ActiveRun, mlflow.entities.Run) and mlflow.ActiveRun is fluent.ActiveRun


def test_dagster_postgres_connects_through_the_retry_function_the_project_replaces():
    """retry_postgres_connections_within replaces dagster_postgres.utils.retry_pg_connection_fn; every storage
    connects through create_pg_connection, which must look that function up in its module at each call, and
    the storages' constructors call it through the name their modules imported (replaced there too)."""
    import dagster_postgres.utils as pg_utils

    from iris_assets import dagster_private

    assert "retry_pg_connection_fn" in pg_utils.create_pg_connection.__wrapped__.__code__.co_names
    assert dagster_private.retry_postgres_connections_within(lambda: 1.0)
    assert getattr(pg_utils.retry_pg_connection_fn, "_iris_within_limit", False)
    # ...and each storage's constructor reads the table names through the name its module imported
    import importlib
    import inspect

    for module_name in dagster_private._POSTGRES_STORAGE_MODULES:  # noqa: SLF001
        module = importlib.import_module(module_name)
        assert getattr(module.retry_pg_connection_fn, "_iris_within_limit", False), module_name
        assert any(
            "retry_pg_connection_fn(" in inspect.getsource(member)
            for member in vars(module).values()
            if inspect.isclass(member) and member.__module__ == module_name
        ), module_name
    assert pg_utils.retry_pg_connection_fn(lambda: "connected") == "connected"


def test_dagster_postgres_stores_an_event_as_finish_storing_an_inserted_event_repeats_it():
    """finish_storing_an_inserted_event redoes what dagster-postgres's store_event does after its INSERT:
    the same private index methods, called the same way, with the serialized event as the row's value
    (the behaviour itself, on a real PostgreSQL: test_postgres_outages.py)."""
    import inspect

    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
    from dagster_postgres import PostgresEventLogStorage

    store_event = inspect.getsource(PostgresEventLogStorage.store_event)
    assert store_event.index("insert_event_statement") < store_event.index("NOTIFY")
    for call in (
        "self._store_asset_event_tags(conn, [event], [event_id])",
        "self._store_asset_event(conn, event, event_id)",
        "self.store_asset_check_event(event, event_id)",
        "in ASSET_EVENTS",
        "in ASSET_CHECK_EVENTS",
    ):
        assert call in store_event, call
    assert '"event": serialize_value(event)' in inspect.getsource(SqlEventLogStorage._event_to_row)  # noqa: SLF001


def test_deploy_s_instance_class_loads_with_dagster_s_own_defaults(tmp_path):
    """deploy/dagster.yaml's instance_class: Dagster asks it for config_schema and config_defaults (the
    private InstanceRef's); what it leaves out gets Dagster's defaults, and its pooled-connection check
    finds no pool on a sqlite instance."""
    from iris_assets import dagster_private
    from iris_assets.instance import IrisInstance

    (tmp_path / "dagster.yaml").write_text(
        "instance_class:\n  module: iris_assets.instance\n  class: IrisInstance\ntelemetry:\n  enabled: false\n"
    )
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance) is IrisInstance
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert dagster_private.ping_pooled_postgres_connections(instance) == 0


def test_a_run_worker_can_still_create_and_queue_a_subset_run():
    """queue_asset_subset_run relies on the plan context's reconstructable job, create_run_for_job with an
    asset selection and origins, and submit_run accepting no workspace for the queued coordinator."""
    import inspect

    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator

    assert isinstance(inspect.getattr_static(PlanOrchestrationContext, "reconstructable_job"), property)
    parameters = inspect.signature(dg.DagsterInstance.create_run_for_job).parameters
    assert {
        "job_def",
        "run_config",
        "tags",
        "asset_selection",
        "remote_job_origin",
        "job_code_origin",
        "status",
    } <= set(parameters)
    assert (
        "workspace"
        not in inspect.getsource(QueuedRunCoordinator.submit_run)
        .split("def submit_run", 1)[1]
        .split("dagster_run = context.dagster_run", 1)[1]
        .split("def cancel_run", 1)[0]
    )
