"""The deployment's Dagster instance: its PostgreSQL storage rides out a restart within the outage limit.

deploy/dagster.yaml names ``IrisInstance`` (``instance_class``), so every process that opens
the instance gets it, the webserver and the daemon included, which load no project code:

* a storage connection that fails is tried again until ``$IRIS_OUTAGE_LIMIT_SECONDS``, then
  fails naming PostgreSQL and its address, never its password (dagster-postgres alone gives
  up after ~11.6 s, with no setting);
* the webserver's pooled connections are checked before use, so the first request after a
  restart is not answered with an error from a connection PostgreSQL has closed.

A project that keeps ``storage: postgres`` without this class still gets the first point in
every process that loads its code (``location.load`` calls ``ride_out_postgres_restarts``).
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from iris_assets import dagster_private, settings


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


# Installed as Dagster reads dagster.yaml (it imports this class before opening any storage).
ride_out_postgres_restarts()
