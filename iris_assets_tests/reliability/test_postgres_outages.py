"""PostgreSQL going away and coming back, under the two clients a run depends on (issue 32's first part).

A real PostgreSQL over TCP, stopped (fast shutdown) and started again on the same data, as
a managed database's restart or failover looks to its clients:

* Dagster's storages (dagster-postgres): they retry a failed connection for up to the outage
  limit ($IRIS_OUTAGE_LIMIT_SECONDS), where dagster-postgres alone gives up after ~11.6 s;
  past the limit they fail naming PostgreSQL and its address, never its password;
* Celery's database result backend, where the run worker waits for its steps' results and
  the workers store them: its retries span the limit, where Celery's defaults give up in
  ~0.1 s (BackendGetMetaError: the run failed).
"""

import threading
import time
import uuid

import pytest
import yaml

from iris_assets import dagster_private
from iris_assets.execution import celery as iris_celery
from iris_assets.instance import IrisInstance, ride_out_postgres_restarts
from iris_harness.topology import TcpPostgresServer

PASSWORD = "pg-secret-never-shown"


@pytest.fixture
def postgres(tmp_path):
    server = TcpPostgresServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _url(server: TcpPostgresServer) -> str:
    # trust authentication: the password is never checked, only carried, as a real URL would carry it
    return f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{server.port}/postgres"


def _away_for(server: TcpPostgresServer, seconds: float) -> threading.Thread:
    """Stop PostgreSQL now; start it again ``seconds`` later, in the background."""
    server.stop_server()

    def come_back() -> None:
        time.sleep(seconds)
        server.start()

    thread = threading.Thread(target=come_back, daemon=True)
    thread.start()
    return thread


def _timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except Exception as error:
        return error, time.monotonic() - started


def test_dagster_s_storage_rides_out_postgres_away_for_longer_than_its_own_retries(postgres, monkeypatch):
    from dagster_postgres import PostgresEventLogStorage

    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "40")
    assert ride_out_postgres_restarts()
    storage = PostgresEventLogStorage(_url(postgres))
    assert storage.get_logs_for_run("no-such-run") == []
    back = _away_for(postgres, 16)  # dagster-postgres alone gives up after ~11.6 s
    answer, waited = _timed(lambda: storage.get_logs_for_run("no-such-run"))
    back.join()
    assert answer == [], answer
    assert waited >= 14, waited  # it did wait for PostgreSQL


def test_an_instance_opened_while_postgres_is_away_waits_for_it(postgres, tmp_path, monkeypatch):
    """A step or worker opening the instance during an outage (its storages' constructors read the table
    names through their own import of dagster-postgres's retry function): it waits past dagster-postgres's
    own ~11.6 s, then opens (measured: a Celery step failed "too many retries for DB connection")."""
    import dagster as dg

    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "40")
    folder = _instance_folder(tmp_path, postgres, instance_class=True)
    with dg.DagsterInstance.from_config(str(folder)) as instance:  # the tables exist
        assert instance.get_runs() == []
    back = _away_for(postgres, 16)

    def open_instance():
        with dg.DagsterInstance.from_config(str(folder)) as instance:
            return instance.get_runs()

    answer, waited = _timed(open_instance)
    back.join()
    assert answer == [] and waited >= 14, (answer, waited)


def test_past_the_limit_dagster_s_storage_names_postgres_without_its_password(postgres, monkeypatch):
    from dagster_postgres import PostgresEventLogStorage

    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "3")
    assert ride_out_postgres_restarts()
    storage = PostgresEventLogStorage(_url(postgres))
    postgres.stop_server()
    error, waited = _timed(lambda: storage.get_logs_for_run("no-such-run"))
    postgres.start()
    message = str(error)
    assert f"PostgreSQL at 127.0.0.1:{postgres.port}/postgres did not answer for " in message, message
    assert "(limit 3 s, $IRIS_OUTAGE_LIMIT_SECONDS)" in message and PASSWORD not in message
    assert 3 <= waited < 8, waited  # about the limit, not a multiple of it


@pytest.mark.parametrize("settings", ["the project's", "Celery's defaults"])
def test_celery_s_result_backend_rides_out_postgres_away_within_the_limit(postgres, monkeypatch, settings):
    """The run worker's wait for a step's result (get_task_meta) while PostgreSQL is away for 6 s: answered
    with the project's settings (limit 20 s); Celery's defaults give up at once (the run would fail)."""
    from celery import Celery

    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "20")
    app = Celery(broker="memory://", backend=f"db+{_url(postgres)}")
    if settings == "the project's":
        app.conf.update(iris_celery.shared_settings())
    else:
        app.conf.update(database_engine_options=iris_celery.CELERY_SETTINGS["database_engine_options"])
    task_id = str(uuid.uuid4())
    app.backend.store_result(task_id, {"step": "model"}, "SUCCESS")
    if settings == "the project's":
        back = _away_for(postgres, 6)
        answer, waited = _timed(lambda: app.backend.get_task_meta(task_id, cache=False))
        back.join()
    else:  # it gives up while PostgreSQL is still away
        postgres.stop_server()
        answer, waited = _timed(lambda: app.backend.get_task_meta(task_id, cache=False))
        postgres.start()
    if settings == "the project's":
        assert isinstance(answer, dict) and answer["status"] == "SUCCESS", answer
        assert answer["result"] == {"step": "model"} and waited >= 5, waited
    else:
        assert type(answer).__name__ == "BackendGetMetaError" and waited < 5, (answer, waited)


def _instance_folder(tmp_path, server: TcpPostgresServer, instance_class: bool):
    folder = tmp_path / ("iris" if instance_class else "plain")
    folder.mkdir()
    config = {"storage": {"postgres": {"postgres_url": _url(server)}}, "telemetry": {"enabled": False}}
    if instance_class:  # as deploy/dagster.yaml names it
        config["instance_class"] = {"module": "iris_assets.instance", "class": "IrisInstance"}
    (folder / "dagster.yaml").write_text(yaml.safe_dump(config))
    return folder


@pytest.mark.parametrize("instance_class", ["IrisInstance", "DagsterInstance"])
def test_the_webserver_s_pooled_connections_after_a_postgres_restart(postgres, tmp_path, monkeypatch, instance_class):
    """The webserver's instance (optimize_for_webserver: one pooled connection per storage), PostgreSQL
    restarted under it: with deploy/dagster.yaml's IrisInstance the next queries are answered; Dagster's own
    instance answers the first query of each storage with the closed connection's error (what the webserver did)."""
    import dagster as dg

    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "20")
    folder = _instance_folder(tmp_path, postgres, instance_class == "IrisInstance")
    with dg.DagsterInstance.from_config(str(folder)) as instance:
        assert (type(instance) is IrisInstance) == (instance_class == "IrisInstance")
        instance.optimize_for_webserver(statement_timeout=5000, pool_recycle=3600, max_overflow=20)
        assert instance.get_runs() == [] and instance.all_logs("no-such-run") == []
        if instance_class == "IrisInstance":  # its three storages' pools are checked before use
            assert dagster_private.ping_pooled_postgres_connections(instance) == 3
            # and their calls made again after a dropped connection (test_a_write_in_flight_…)
            assert hasattr(instance.event_log_storage.get_logs_for_run, "__wrapped__")
            assert hasattr(instance.run_storage.get_runs, "__wrapped__")
        postgres.stop_server()
        postgres.start()
        answers = []
        for query in (instance.get_runs, lambda: instance.all_logs("no-such-run"), instance.get_runs):
            try:
                answers.append(query())
            except Exception as error:
                answers.append(type(error).__name__)
        if instance_class == "IrisInstance":
            assert answers == [[], [], []], answers
            back = _away_for(postgres, 4)  # still away when asked: it waits, then answers
            answer, waited = _timed(instance.get_runs)
            back.join()
            assert answer == [] and waited >= 3, (answer, waited)
        else:
            # each storage's first query meets its closed connection (then SQLAlchemy replaces its pool)
            assert answers == ["OperationalError", "OperationalError", []], answers


def test_a_write_in_flight_when_postgres_stops_is_written_again(postgres, monkeypatch):
    """A statement running when PostgreSQL stops (fast shutdown terminates it: what failed a step's event
    write mid-run) is run again once PostgreSQL is back, within the limit; without the wrapper it fails."""
    import sqlalchemy

    from iris_assets.instance import again_after_a_dropped_connection

    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "20")
    assert ride_out_postgres_restarts()
    engine = sqlalchemy.create_engine(_url(postgres), poolclass=sqlalchemy.pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE IF NOT EXISTS written (n int)"))
    calls = []

    def slow_write() -> int:
        import dagster_postgres.utils as pg_utils

        calls.append(time.monotonic())
        with pg_utils.create_pg_connection(engine) as connection:
            connection.execute(sqlalchemy.text("SELECT pg_sleep(2)"))  # PostgreSQL stops meanwhile
            connection.execute(sqlalchemy.text("INSERT INTO written VALUES (1)"))
        return len(calls)

    def stop_mid_statement(seconds: float) -> threading.Thread:
        def run() -> None:
            time.sleep(0.8)
            postgres.stop_server()
            time.sleep(seconds)
            postgres.start()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    outage = stop_mid_statement(3)
    answer, _ = _timed(slow_write)
    outage.join()
    assert type(answer).__name__ == "OperationalError" and answer.connection_invalidated, answer
    outage = stop_mid_statement(3)
    answer, waited = _timed(again_after_a_dropped_connection(slow_write))
    outage.join()
    assert answer == 3 and waited >= 3, (answer, waited)  # the first try dropped, the second after the restart
    with engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM written")).scalar() == 1
    engine.dispose()


@pytest.mark.parametrize("instance_class", ["IrisInstance", "DagsterInstance"])
def test_an_event_stored_just_before_the_connection_drops_is_stored_once(
    postgres, tmp_path, monkeypatch, instance_class
):
    """dagster-postgres stores an event with an INSERT, then a NOTIFY, then (an asset event) its index: the
    connection dropped between them (PostgreSQL stopping as the INSERT committed: a STEP_START was stored
    twice in CI). With IrisInstance the call made again finds the event stored and only finishes its index:
    one materialization, indexed; Dagster's own instance fails the call."""
    import dagster as dg
    import psycopg2
    import sqlalchemy

    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "20")
    folder = _instance_folder(tmp_path, postgres, instance_class == "IrisInstance")
    admin = psycopg2.connect(postgres.admin_url)
    admin.autocommit = True
    dropped = []

    def drop_at_the_notify(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("NOTIFY") and not dropped:  # the INSERT has committed
            dropped.append(cursor.connection.get_backend_pid())
            with admin.cursor() as admin_cursor:
                admin_cursor.execute("SELECT pg_terminate_backend(%s)", (dropped[0],))

    with dg.DagsterInstance.from_config(str(folder)) as instance:
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", drop_at_the_notify)
        try:
            answer, _ = _timed(lambda: instance.report_runless_asset_event(dg.AssetMaterialization("blip")))
        finally:
            sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", drop_at_the_notify)
        assert len(dropped) == 1  # the drop happened, after the INSERT
        stored = instance.fetch_materializations(dg.AssetKey("blip"), limit=10).records
        if instance_class == "IrisInstance":
            assert answer is None, answer
            assert len(stored) == 1, stored  # not twice
            latest = instance.get_latest_materialization_event(dg.AssetKey("blip"))
            assert latest is not None and latest.timestamp == stored[0].timestamp  # read from its index: written
        else:
            assert type(answer).__name__ == "OperationalError" and len(stored) == 1, (answer, stored)
    admin.close()


def test_a_step_keeps_its_lease_through_a_postgres_restart(postgres, monkeypatch):
    """A step holding its lease while PostgreSQL is away for longer than STALE_SECONDS, and the broker hands
    the step out again the moment PostgreSQL is back (both restarted together): the new delivery is refused,
    the holder keeps its lease (a session lock was released by the restart: the step ran twice, in CI)."""
    import os
    import signal

    from iris_assets.execution import leases
    from iris_harness import lease_holder

    monkeypatch.setenv("IRIS_OUTAGE_LIMIT_SECONDS", "40")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", _url(postgres).replace("+psycopg2", ""))
    holder, said = lease_holder.start("run-1", "model", os.environ.copy())
    try:
        assert said.startswith("held "), said
        back = _away_for(postgres, leases.STALE_SECONDS + 5)
        with leases.step_lease("run-1", "model", on_lost=lambda _: None) as (_, refused):  # waits for PostgreSQL
            back.join()
            assert refused == said.removeprefix("held ")
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=30) == -signal.SIGTERM
        assert holder.stdout.read() == ""  # it never heard its lease was lost
        assert PASSWORD not in said
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
