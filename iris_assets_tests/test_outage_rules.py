"""The rules behind outage handling, each on real parts: retry budgets, what a storage error
means, the wait for services, and the step lease on a real PostgreSQL.

The outages themselves (broker and object store stopped mid-run on the scale-out topology)
are the last cases of reliability/test_scaleout.py.
"""

import errno
import os
import signal
import time

import pytest

from iris_assets import settings
from iris_assets.execution import leases, outages
from iris_assets.execution.leases import step_lease
from iris_harness import lease_holder
from iris_harness.processes import free_port


def test_publishing_retries_cover_the_limit_and_no_more():
    """kombu waits 0, 1, 2... capped at 5 s between publishing attempts: the policy's waits
    reach the limit, and one retry fewer would not."""
    for seconds in (5, 60, 300):
        policy = outages.publish_retry_policy(seconds)
        waits = [min(i * policy["interval_step"], policy["interval_max"]) for i in range(policy["max_retries"])]
        assert sum(waits) >= seconds > sum(waits[:-1]), (seconds, policy)


def test_tracking_server_retries_cover_the_limit():
    """urllib3's backoff (factor 1) before retries 2, 3, ... is 2, 4, 8... s: the fewest retries covering it."""
    assert [settings.http_retries_within(s) for s in (5, 10, 60)] == [3, 4, 6]
    assert settings.process_default("MLFLOW_HTTP_REQUEST_MAX_RETRIES") == str(
        settings.http_retries_within(settings.current().outage_limit_seconds)
    )


@pytest.mark.parametrize(
    "error, retried",
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), True),
        (TimeoutError("read timed out"), True),
        (OSError(errno.EREMOTEIO, "500 InternalError"), True),
        (OSError(errno.EBUSY, "503 SlowDown"), True),
        (FileNotFoundError(errno.ENOENT, "no such key"), False),
        (PermissionError(errno.EACCES, "Access Denied"), False),
        (ValueError("a bad pickle"), False),
    ],
)
def test_only_an_unanswered_storage_call_is_retried(error, retried):
    assert outages.storage_unavailable(error) is retried


def test_a_store_that_never_answers_fails_naming_it_within_the_limit(monkeypatch):
    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "2")
    port = free_port()  # nothing listens there
    service = outages.celery_broker(f"pyamqp://guest:secret-password@127.0.0.1:{port}//")
    calls = []

    def refused():
        calls.append(1)
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    with pytest.raises(outages.ServiceUnavailable) as raised:
        outages.retrying(service, refused)
    message = str(raised.value)
    assert message.startswith(f"The Celery broker at pyamqp://127.0.0.1:{port} did not answer for 2 s"), message
    assert "secret-password" not in message and len(calls) >= 3  # retried with backoff, then gave up


def test_waiting_for_services_logs_once_and_returns_those_still_away(monkeypatch):
    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "1")
    port = free_port()
    away = outages.celery_broker(f"pyamqp://guest:secret-password@127.0.0.1:{port}//")
    answering = outages.Service("answering service", "here", lambda: None)
    lines: list[str] = []
    ((still_away, error),) = outages.wait_until_ready([answering, away], lines.append)
    assert still_away == away and isinstance(error, ConnectionRefusedError), error
    assert len(lines) == 1 and f"the Celery broker at pyamqp://127.0.0.1:{port}" in lines[0], lines
    assert "secret-password" not in lines[0]
    lines.clear()
    assert outages.wait_until_ready([answering], lines.append) == [] and lines == []


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    from iris_harness.topology import Postgres

    server = Postgres(tmp_path_factory.mktemp("lease"))
    yield server.url("dagster")


def _ignore(_holder: str) -> None:
    pass


def test_a_step_lease_is_exclusive_and_taken_over_once_its_worker_stopped_beating(postgres_url, monkeypatch):
    """What lets a worker drop a redelivered step that a live worker runs (its heartbeat moves: refused within
    a few beats), and run one whose worker died (its heartbeat stood still STALE_SECONDS: taken over). Here the
    holder is frozen (SIGSTOP: to the others, a dead worker), so that, woken, its next beat tells it."""
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url.replace("+psycopg2", ""))
    with step_lease("run-1", "model", _ignore) as (first, refused_first):
        started = time.monotonic()
        with (
            step_lease("run-1", "model", _ignore) as (_, refused),
            step_lease("run-1", "metrics", _ignore) as (_, other),
        ):
            assert (refused_first, refused, other) == (None, first.holder, None)
            assert time.monotonic() - started < leases.STALE_SECONDS  # told alive by its beat, not by a timeout
    with step_lease("run-1", "model", _ignore) as (_, refused):
        assert refused is None  # given up when its block ended
    holder, said = lease_holder.start("run-1", "model", os.environ.copy())
    try:
        assert said.startswith("held "), said
        with step_lease("run-1", "model", _ignore) as (_, refused):
            assert refused == said.removeprefix("held ")
        holder.send_signal(signal.SIGSTOP)  # its step's message comes back to the queue at once
        started = time.monotonic()
        with step_lease("run-1", "model", _ignore) as (taker, refused):
            waited = time.monotonic() - started
            assert refused is None and taker.holder != said.removeprefix("held ")
            holder.send_signal(signal.SIGCONT)
            assert holder.stdout.readline().strip() == f"lost {taker.holder}"
        assert leases.STALE_SECONDS <= waited < leases.STALE_SECONDS + 5, waited
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()


def test_without_postgres_every_delivery_has_the_lease(monkeypatch):
    monkeypatch.delenv("DAGSTER_POSTGRES_URL", raising=False)
    with step_lease("run-1", "model", _ignore) as (_, first), step_lease("run-1", "model", _ignore) as (_, second):
        assert first is None and second is None


def test_a_reexecution_waits_for_the_lease_of_its_predecessor_s_step(postgres_url, monkeypatch):
    """A retry's run worker, before its first step: a step of the run it re-executes (or of that run's
    parent) still holds a live lease -> it waits, then refuses naming the step and run; its holder killed ->
    on once the heartbeat has stood still STALE_SECONDS; given up -> no wait."""
    import dagster as dg

    from iris_assets.execution.leases import PredecessorStillRunning, wait_for_predecessors

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url.replace("+psycopg2", ""))
    with dg.DagsterInstance.ephemeral() as instance:
        first = instance.add_run(dg.DagsterRun(job_name="j", run_id="run-1", status=dg.DagsterRunStatus.FAILURE))
        retry = instance.add_run(
            dg.DagsterRun(job_name="j", run_id="run-2", parent_run_id="run-1", root_run_id="run-1")
        )
        resumed = dg.DagsterRun(job_name="j", run_id="run-3", parent_run_id="run-2", root_run_id="run-1")
        assert first.status == dg.DagsterRunStatus.FAILURE and retry.parent_run_id == "run-1"
        holder, held = lease_holder.start("run-1", "splits", os.environ.copy())
        said: list[str] = []
        try:
            assert held.startswith("held "), held  # run-1's splits still runs
            with pytest.raises(PredecessorStillRunning, match=r"Step 'splits' of run run-1 still runs on a worker"):
                wait_for_predecessors(instance, resumed, ["splits", "model"], said.append, wait_seconds=12)
            assert said == ["Waiting up to 12 s for step 'splits' of run run-1 to stop on its worker."], said
            holder.send_signal(signal.SIGKILL)  # killed without giving its lease up
            holder.wait(timeout=30)
            said.clear()
            started = time.monotonic()
            wait_for_predecessors(instance, resumed, ["splits", "model"], said.append, wait_seconds=30)
            assert time.monotonic() - started >= leases.STALE_SECONDS and len(said) == 1, said
            with step_lease("run-2", "model", _ignore):
                pass  # given up at its end, as a stopped step gives its lease up before it ends
            said.clear()
            wait_for_predecessors(instance, resumed, ["model"], said.append, wait_seconds=30)
            assert said == []
        finally:
            holder.kill()
            holder.wait(timeout=30)
            holder.stdout.close()


def test_the_run_worker_tells_postgres_giving_up_from_other_errors():
    """What the run worker fails a run with, once PostgreSQL answers again: the storage's own error naming
    PostgreSQL, found however Dagster wrapped it; any other error is left as it is."""
    from dagster_postgres.utils import DagsterPostgresException

    gave_up = DagsterPostgresException("PostgreSQL at db:5432/dagster did not answer for 60 s (limit 60 s, …)")
    try:
        try:
            raise gave_up
        except DagsterPostgresException as error:
            raise RuntimeError("while writing STEP_FAILURE") from error
    except RuntimeError as wrapped:
        assert outages.postgres_gave_up(wrapped) is gave_up
    assert outages.postgres_gave_up(DagsterPostgresException("too many retries for DB connection")) is None
    assert outages.postgres_gave_up(ValueError("PostgreSQL at db:5432/dagster")) is None
