"""The deployment's Dagster instance: its PostgreSQL storage rides out a restart within the outage limit.

deploy/dagster.yaml names ``IrisInstance`` (``instance_class``), so every process that opens
the instance gets it, the webserver and the daemon included, which load no project code:

* a storage connection that fails is tried again until ``$IRIS_OUTAGE_LIMIT_SECONDS``, then
  fails naming PostgreSQL and its address, never its password (dagster-postgres alone gives
  up after ~11.6 s, with no setting);
* the webserver's pooled connections are checked before use, so the first request after a
  restart is not answered with an error from a connection PostgreSQL has closed;
* a storage call whose statement was in flight when PostgreSQL dropped the connection is made
  again, within the limit: a restart terminates the statements it finds running, and steps
  reading asset records or writing an event at that moment failed (measured). Every public
  method of the three storages is wrapped. Storing an event is several statements (an INSERT
  that commits, a NOTIFY, the asset index): when the drop comes after the INSERT, the call made
  again finds the event stored and only finishes its index (a STEP_START was stored twice in
  CI). Any other write that committed just before the drop would be made twice, but
  PostgreSQL aborts a statement it terminates, so that window is the reply's transit alone.

A project that keeps ``storage: postgres`` without this class still gets the first point in
every process that loads its code (``location.load`` calls ``ride_out_postgres_restarts``).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import dagster as dg

from iris_assets import dagster_private, settings

T = TypeVar("T")


def outage_limit_seconds() -> float:
    """The outage limit, or its default where the setting is refused (it is refused, naming it, where
    settings are validated: this is read inside Dagster's storage calls)."""
    try:
        return settings.current().outage_limit_seconds
    except settings.SettingError:
        return settings.DEFAULT_OUTAGE_LIMIT_SECONDS


def ride_out_postgres_restarts() -> bool:
    """Make this process's Dagster PostgreSQL storage retry within the outage limit; whether it has one."""
    return dagster_private.retry_postgres_connections_within(outage_limit_seconds)


class IrisInstance(dg.DagsterInstance):
    """A ``DagsterInstance`` whose PostgreSQL storage rides out restarts (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        for storage in (self.run_storage, self.event_log_storage, self.schedule_storage):
            if storage is not None:
                make_calls_again_after_a_dropped_connection(storage)

    # What Dagster asks of a class named by dagster.yaml's `instance_class`: its own settings (none)
    # and the defaults of the settings dagster.yaml leaves out (Dagster's own).
    @classmethod
    def config_schema(cls) -> dict:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, object]:
        return dagster_private.instance_config_defaults(base_dir)

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        super().optimize_for_webserver(statement_timeout, pool_recycle, max_overflow)
        dagster_private.ping_pooled_postgres_connections(self)


# Storage methods that open no connection of their own, or that must run once.
_CALLED_ONCE = {"dispose", "optimize_for_webserver", "register_instance", "upgrade", "migrate", "reindex"}


def make_calls_again_after_a_dropped_connection(storage: object) -> None:
    """Wrap each public method of a Dagster storage object (``again_after_a_dropped_connection``)."""
    for name in dir(type(storage)):
        if name.startswith("_") or name in _CALLED_ONCE:
            continue
        if inspect.isfunction(inspect.getattr_static(type(storage), name)):  # not a property or classmethod
            already_done = None
            if name == "store_event" and _is_postgres(storage):  # its INSERT may have committed before the drop
                already_done = functools.partial(dagster_private.finish_storing_an_inserted_event, storage)
            setattr(storage, name, again_after_a_dropped_connection(getattr(storage, name), already_done))


def again_after_a_dropped_connection(
    call: Callable[..., T], already_done: Callable[..., bool] | None = None
) -> Callable[..., T]:
    """``call``, made again while it fails because PostgreSQL dropped its connection (SQLAlchemy marks
    such an error ``connection_invalidated``), up to the outage limit; the next attempt's connection
    waits for PostgreSQL like any other. ``already_done(*args, **kwargs)``, asked before each new
    attempt, tells (and finishes) a call whose write committed before the drop: it is not made again."""

    @functools.wraps(call)
    def again(*args: Any, **kwargs: Any) -> T:
        import sqlalchemy

        started, dropped = time.monotonic(), False
        while True:
            try:
                if dropped and already_done is not None and already_done(*args, **kwargs):
                    return cast(T, None)
                return call(*args, **kwargs)
            except sqlalchemy.exc.DBAPIError as error:
                if not error.connection_invalidated or time.monotonic() - started >= outage_limit_seconds():
                    raise
                dropped = True
                time.sleep(0.5)

    return again


def _is_postgres(storage: object) -> bool:
    return type(storage).__module__.startswith("dagster_postgres.")


# Installed as Dagster reads dagster.yaml (it imports this class before opening any storage).
ride_out_postgres_restarts()
