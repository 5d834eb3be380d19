"""Step leases: one worker at a time executes a run's step, and a retry never writes beside its predecessor.

A step on a Celery worker runs holding its lease: a row of ``iris_step_leases`` in the
instance's PostgreSQL (run, step, holder, heartbeat) whose heartbeat the holder moves every
``HEARTBEAT_SECONDS``. A row outlives a PostgreSQL restart or failover, and its holder beats
again as soon as PostgreSQL answers, so a step keeps its lease through an outage (a session
lock, which a restart releases, let a redelivered step run twice). Whether a holder lives is
told by watching its heartbeat *from here*: alive once it moves; dead once it has stood still
for ``STALE_SECONDS`` during which this process reached PostgreSQL (while PostgreSQL is away
nobody can beat, so that time never counts against a holder). Two rules use it:

* a delivery of a step whose holder is alive is dropped; one whose holder died (its worker
  was killed) takes the lease over and runs (``execution.step_task``);
* a run that re-executes earlier runs (an automatic retry, a re-execution from failure)
  continues their MLflow run, so before its first step its run worker waits until no step
  of those runs still holds a live lease: a step still running when its run failed is
  stopped by its worker (``execution.step_task``), which gives its lease up first.

A holder that finds its lease taken over (it could not beat for ``STALE_SECONDS`` while
another worker reached PostgreSQL: a frozen process, a network cut between it and
PostgreSQL alone) is told so at its next beat and stops its step.

Without ``DAGSTER_POSTGRES_URL`` (no PostgreSQL) there are no leases: steps then run in the
run worker's processes, which end with it.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

import dagster as dg
import sqlalchemy

from iris_assets import settings
from iris_assets.execution import outages
from iris_assets.tracking.redaction import database_address

TABLE = "iris_step_leases"
# A holder beats this often; a watcher calls it dead after this long without a beat (five beats:
# room for a loaded machine), and a retry waits this long at most for its predecessor's steps.
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 10.0
LEASE_WAIT_SECONDS = 30
_POLL_SECONDS = 0.5
# Each transaction on a connection of its own, given up quickly when PostgreSQL hangs (a URL's own
# `options`, such as a search_path, are kept: the timeouts are set per transaction).
_CONNECT_ARGS = {"connect_timeout": 5}
_TIMEOUTS = sqlalchemy.text("SET LOCAL statement_timeout = 5000; SET LOCAL lock_timeout = 5000")


class PredecessorStillRunning(dg.DagsterError):
    """A step of a run this one re-executes still runs on a worker after the wait: this run writes nothing."""


@dataclass(frozen=True)
class Holding:
    """A lease's row as read: who holds it and its last beat (PostgreSQL's clock)."""

    holder: str
    heartbeat: datetime.datetime


class Lease:
    """The lease of one run's step, held by this process while its step runs (see the module)."""

    def __init__(self, run_id: str, step_key: str, url: Optional[str], on_lost: Callable[[str], None]):
        self.run_id, self.step_key = run_id, step_key
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._on_lost = on_lost
        self._table = _Table(url) if url else None
        self._stopped = threading.Event()
        self._beats: Optional[threading.Thread] = None
        self._giving_up = threading.Lock()

    def take(self) -> Optional[str]:
        """Take the lease, over a dead holder if need be; None once taken, else who holds it alive."""
        if self._table is None:
            return None
        key = {"run_id": self.run_id, "step_key": self.step_key, "holder": self.holder}
        watch = _Watch()
        while True:
            try:
                with self._table.begin() as connection:
                    if connection.execute(_INSERT, key).first() is not None:
                        break
                    holding = _holding(connection, key)
                    verdict = watch.see(holding)
                    if verdict == "alive":
                        assert holding is not None
                        return holding.holder
                    if verdict == "dead" and connection.execute(_TAKE_OVER, {**key, **_was(holding)}).rowcount:
                        break
                watch.outage.answered()
            except sqlalchemy.exc.DBAPIError as error:
                watch.lost_sight(error, self._table.address)
            time.sleep(_POLL_SECONDS)
        self._beats = threading.Thread(target=self._beat, name=f"lease {self.run_id}/{self.step_key}", daemon=True)
        self._beats.start()
        return None

    def give_up(self) -> None:
        """Stop beating and delete the row (waiting within the outage limit for PostgreSQL); idempotent."""
        with self._giving_up:  # the step's end and a stop of its run can meet here
            if self._table is None or self._beats is None:
                return
            self._stopped.set()
            self._beats.join()
            self._beats = None
        key = {"run_id": self.run_id, "step_key": self.step_key, "holder": self.holder}
        outage = _Outage()
        while True:
            try:
                with self._table.begin() as connection:
                    connection.execute(_DELETE, key)
                return
            except sqlalchemy.exc.DBAPIError as error:
                try:
                    outage.away(error, self._table.address)
                except (outages.ServiceUnavailable, sqlalchemy.exc.DBAPIError):
                    return  # left behind: it goes stale, and a watcher passes it after STALE_SECONDS
                time.sleep(_POLL_SECONDS)

    def _beat(self) -> None:
        """Every HEARTBEAT_SECONDS, move the heartbeat (re-creating the row if a failover lost it); a row
        found in another holder's name means this lease was taken over: ``on_lost`` is called (it must not
        call ``give_up``, which waits for this thread)."""
        assert self._table is not None
        key = {"run_id": self.run_id, "step_key": self.step_key, "holder": self.holder}
        while not self._stopped.wait(HEARTBEAT_SECONDS):
            try:
                with self._table.begin() as connection:
                    if connection.execute(_BEAT, key).first() is None:
                        holding = _holding(connection, key)
                        self._on_lost(holding.holder if holding else "nobody")
                        return
            except sqlalchemy.exc.DBAPIError:
                continue  # PostgreSQL is away: beat again once it answers


@contextmanager
def step_lease(run_id: str, step_key: str, on_lost: Callable[[str], None]) -> Iterator[tuple[Lease, Optional[str]]]:
    """Hold the lease of a run's step while the block runs; yields the lease and, when a live worker holds
    it instead, that holder (then nothing is held). ``on_lost(new_holder)`` is called from the heartbeat
    thread if the lease is taken over while held. Without PostgreSQL every delivery has the lease."""
    lease = Lease(run_id, step_key, settings.current().dagster_postgres_sqlalchemy_url, on_lost)
    held_by = lease.take()
    try:
        yield lease, held_by
    finally:
        lease.give_up()


def wait_for_predecessors(
    instance: dg.DagsterInstance,
    dagster_run: dg.DagsterRun,
    step_keys: Sequence[str],
    log: Callable[[str], None],
    wait_seconds: float = LEASE_WAIT_SECONDS,
) -> None:
    """Before a re-execution's first step: wait until no step of the runs it re-executes holds a live lease
    (none released or dead: on at once); past ``wait_seconds`` raise naming the step."""
    url = settings.current().dagster_postgres_sqlalchemy_url
    if url is None or not dagster_run.parent_run_id:
        return
    table = _Table(url)
    deadline = time.monotonic() + wait_seconds
    for earlier in _earlier_runs(instance, dagster_run):
        for step_key in step_keys:
            key = {"run_id": earlier, "step_key": step_key}
            watch, announced = _Watch(), False
            while True:
                try:
                    with table.begin() as connection:
                        verdict = watch.see(_holding(connection, key))
                    watch.outage.answered()
                    if verdict in ("free", "dead"):
                        break
                except sqlalchemy.exc.DBAPIError as error:
                    watch.lost_sight(error, table.address)
                if not announced:
                    log(
                        f"Waiting up to {wait_seconds:.0f} s for step {step_key!r} of run {earlier} to stop on its worker."
                    )
                    announced = True
                if time.monotonic() >= deadline:
                    raise PredecessorStillRunning(
                        f"Step {step_key!r} of run {earlier} still runs on a worker after {wait_seconds:.0f} s; "
                        "this run continues the same MLflow run, so it starts no step. Re-execute it once that step ends."
                    )
                time.sleep(_POLL_SECONDS)


# -- the table ------------------------------------------------------------------------------------

_CREATE = sqlalchemy.text(
    f"CREATE TABLE IF NOT EXISTS {TABLE} (run_id text NOT NULL, step_key text NOT NULL, holder text NOT NULL, "
    "heartbeat timestamptz NOT NULL, PRIMARY KEY (run_id, step_key))"
)
_INSERT = sqlalchemy.text(
    f"INSERT INTO {TABLE} (run_id, step_key, holder, heartbeat) VALUES (:run_id, :step_key, :holder, clock_timestamp()) "
    "ON CONFLICT DO NOTHING RETURNING holder"
)
_SELECT = sqlalchemy.text(f"SELECT holder, heartbeat FROM {TABLE} WHERE run_id = :run_id AND step_key = :step_key")
_BEAT = sqlalchemy.text(
    f"INSERT INTO {TABLE} AS lease (run_id, step_key, holder, heartbeat) "
    "VALUES (:run_id, :step_key, :holder, clock_timestamp()) "
    "ON CONFLICT (run_id, step_key) DO UPDATE SET heartbeat = excluded.heartbeat WHERE lease.holder = excluded.holder "
    "RETURNING lease.holder"
)
_TAKE_OVER = sqlalchemy.text(
    f"UPDATE {TABLE} SET holder = :holder, heartbeat = clock_timestamp() "
    "WHERE run_id = :run_id AND step_key = :step_key AND holder = :was_holder AND heartbeat = :was_heartbeat"
)
_DELETE = sqlalchemy.text(f"DELETE FROM {TABLE} WHERE run_id = :run_id AND step_key = :step_key AND holder = :holder")
# Rows of holders that died and were never taken over (their step ended in another delivery).
_FORGET_OLD = sqlalchemy.text(f"DELETE FROM {TABLE} WHERE heartbeat < clock_timestamp() - interval '7 days'")


class _Table:
    """The lease table of one PostgreSQL, created where it is missing (then its week-old rows deleted)."""

    def __init__(self, url: str):
        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, connect_args=_CONNECT_ARGS)
        self.address = database_address(self.engine.url)
        self._forgot = False

    @contextmanager
    def begin(self) -> Iterator[sqlalchemy.Connection]:
        with self.engine.begin() as connection:
            connection.execute(_TIMEOUTS)
            if connection.execute(sqlalchemy.text("SELECT to_regclass(:name)"), {"name": TABLE}).scalar() is None:
                # Workers starting together: one creates, the others wait for it and find the table.
                connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": TABLE})
                connection.execute(_CREATE)
            elif not self._forgot:
                connection.execute(_FORGET_OLD)
                self._forgot = True
            yield connection


def _holding(connection: sqlalchemy.Connection, key: dict[str, str]) -> Optional[Holding]:
    row = connection.execute(_SELECT, key).first()
    return Holding(row.holder, row.heartbeat) if row is not None else None


def _was(holding: Optional[Holding]) -> dict[str, object]:
    assert holding is not None
    return {"was_holder": holding.holder, "was_heartbeat": holding.heartbeat}


class _Outage:
    """How long PostgreSQL has been away from this watcher; past the outage limit, raise naming it."""

    def __init__(self) -> None:
        self.since: Optional[float] = None

    def answered(self) -> None:
        self.since = None

    def away(self, error: sqlalchemy.exc.DBAPIError, address: str) -> None:
        if not (
            isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))
            or error.connection_invalidated
        ):
            raise error  # an answer (a refused statement, a missing privilege), not an outage
        now = time.monotonic()
        self.since = self.since if self.since is not None else now
        if now - self.since >= outages.limit_seconds():
            service = outages.Service("PostgreSQL server of the step leases", address, lambda: None)
            raise service.unavailable(now - self.since, error) from error


class _Watch:
    """Tells a live holder from a dead one by its heartbeat, as seen from here (see the module)."""

    def __init__(self) -> None:
        self.seen: Optional[Holding] = None
        self.since = 0.0
        self.outage = _Outage()

    def see(self, holding: Optional[Holding]) -> str:
        """ "free" (no row), "alive" (its heartbeat moved), "dead" (still for STALE_SECONDS), or "watching"."""
        now = time.monotonic()
        if holding is None:
            self.seen = None
            return "free"
        if self.seen is None or holding.holder != self.seen.holder:
            self.seen, self.since = holding, now
            return "watching"
        if holding.heartbeat != self.seen.heartbeat:
            return "alive"
        return "dead" if now - self.since >= STALE_SECONDS else "watching"

    def lost_sight(self, error: sqlalchemy.exc.DBAPIError, address: str) -> None:
        """PostgreSQL did not answer: the watch starts over once it does (nobody could beat meanwhile)."""
        self.seen = None
        self.outage.away(error, address)


def _earlier_runs(instance: dg.DagsterInstance, dagster_run: dg.DagsterRun) -> list[str]:
    """The runs ``dagster_run`` re-executes: its parent, its parent's parent... (newest first)."""
    found: list[str] = []
    parent_id = dagster_run.parent_run_id
    while parent_id and parent_id not in found:
        found.append(parent_id)
        parent = instance.get_run_by_id(parent_id)
        parent_id = parent.parent_run_id if parent is not None else None
    return found
