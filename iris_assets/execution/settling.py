"""The executor wrapper: what the run worker does around any executor, for MLflow and for liveness.

* Before the first step, it records who runs the run (``runs.workers``), so a worker
  killed outright can be told from one still working, and its runs closed; and it
  waits, up to the outage limit, for the services the run needs to answer
  (``execution.outages``): a retry launched during an outage waits for the recovery.
* Before the first step of a retry or re-execution, it waits until no step of the runs
  it re-executes still runs on a worker (``execution.leases``).
* A step that cannot be handed to the Celery broker within the limit fails the run
  naming the broker and its address; when the instance's PostgreSQL gave up past the
  limit, the run worker waits for it to answer again and fails the run naming it.
* After the last step, it ends the MLflow run a dead step process left RUNNING.
  Step processes end the MLflow run themselves (resource teardown, see
  ``closing.settle``); one killed mid-step cannot, but the run worker outlives
  every step process, so it settles the run from the event log
  (``closing.settle_after_steps``, idempotent: in one process it finds the run ended).
* Before the first step, every step's config is validated (``config_errors``): a value
  a step would refuse fails the run at once, in one line, with no MLflow run; a run over
  several pipelines becomes one run per pipeline (``execution.split``).
* Around the steps, full garbage collections skip what outlives the run
  (``execution.heap``).
* In a terminal command (`dg launch`, `iris-runs reexecute`), the run ends with one
  line: its MLflow run, scores and registry decision (``runs.summary``).
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from iris_assets import config_errors, io_manager, settings
from iris_assets.execution import outages, split
from iris_assets.execution.heap import frozen_survivors
from iris_assets.execution.leases import wait_for_predecessors
from iris_assets.runs.summary import summary
from iris_assets.runs.workers import record_worker
from iris_assets.tracking.closing import settle_after_steps


class SettlingExecutor(dg.Executor):
    def __init__(self, inner: dg.Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def __getattr__(self, name: str):
        # Executors' own loops read their executor back from the plan context (dagster-celery's
        # calls plan_context.executor.app_args()): everything else is the inner executor's.
        return getattr(self._inner, name)

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        # A step's config that would be refused fails the run now, in one line: no step, no MLflow run.
        config_errors.refuse_before_the_first_step(plan_context, execution_plan)
        # A run over several pipelines (one location holding several) becomes a run per pipeline.
        if split.split_by_pipeline(plan_context):
            return
        record_worker(plan_context.instance, plan_context.dagster_run.run_id)
        broker = getattr(self._inner, "broker", None)  # dagster-celery's executor: the run's broker URL
        try:
            away = outages.wait_until_ready(self._services(plan_context, broker), plan_context.log.warning)
            for service, error in away:
                if service.name == outages.BROKER:  # no step can start: fail now, naming it
                    raise service.unavailable(outages.limit_seconds(), error)
            # A retry continues its predecessor's MLflow run: not while a step of that run still runs.
            wait_for_predecessors(
                plan_context.instance,
                plan_context.dagster_run,
                execution_plan.step_keys_to_execute,
                plan_context.log.warning,
            )
            with frozen_survivors():
                yield from self._inner.execute(plan_context, execution_plan)
        except Exception as error:
            if broker is not None and outages.is_broker_error(error):
                raise outages.broker_unavailable(broker, error) from error
            gave_up = outages.postgres_gave_up(error)
            if gave_up is not None:  # nothing is recorded while PostgreSQL is away: wait to say why
                run_id = plan_context.dagster_run.run_id
                raise outages.record_when_postgres_answers(plan_context.instance, run_id, gave_up) from error
            raise
        finally:
            try:
                settle_after_steps(plan_context.instance, plan_context.dagster_run, plan_context.log)
            except Exception as error:  # the tracking server may be what failed the run
                plan_context.log.warning(f"Could not end the MLflow run from the run worker: {error}")
            if settings.dagster_cli_run_command():
                _log_summary(plan_context)

    @staticmethod
    def _services(plan_context, broker) -> list[outages.Service]:
        services = [
            outages.tracking_server(settings.current().resolved_tracking_uri),
            outages.object_store(io_manager.storage_base(plan_context.instance)),
            outages.celery_broker(broker) if broker is not None else None,
        ]
        return [service for service in services if service is not None]


def _log_summary(plan_context) -> None:
    try:
        line = summary(plan_context.instance, plan_context.dagster_run.run_id)
    except Exception as error:  # a summary is no reason to fail a run
        line = f"MLflow run: not read ({error})"
    if line:
        plan_context.log.info(line)
