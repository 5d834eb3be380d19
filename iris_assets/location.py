"""What loading a code location does beside building its Definitions (Iris's, or a dataset's).

A terminal command that would run on a temporary instance, or with a bad setting or a
refused run config, stops in one line before any work; a code server forks its run
workers from a preloaded forkserver.
"""

import sys
from typing import Callable

import dagster as dg

from iris_assets import settings


def load(build: Callable[[], dg.Definitions]) -> dg.Definitions:
    """Iris's Definitions (or a dataset location's, ``build``), behind the guards a code location needs."""
    command = settings.dagster_cli_run_command()
    # A CLI run on a temporary instance would vanish with it: refuse in one line, before any work.
    refusal = settings.refuse_temporary_instance()
    if refusal:
        sys.exit(refusal)
    # A bad setting, in such a command, is one line too (a code server raises it: the UI shows it).
    try:
        definitions = build()
    except settings.SettingError as error:
        if command is None:
            raise
        sys.exit(f"{command}: {error}")
    # A terminal command's run config (-c FILE) that a step would refuse is one line, before a run
    # exists; Dagster's own config errors in such a command are one line too (config_errors.py).
    if command is not None:
        from iris_assets import config_errors

        config_errors.install_cli_excepthook(definitions)
        refused_config = config_errors.cli_refusal(definitions)
        if refused_config:
            print(refused_config, file=sys.stderr)
            sys.exit(config_errors.EXIT_STATUS)
    from iris_assets.execution.run_workers import fork_run_workers
    from iris_assets.instance import ride_out_postgres_restarts

    # Every process that loads a location (code server, run workers, step processes, Celery workers)
    # rides out a PostgreSQL restart of up to the outage limit, then names PostgreSQL, also on an
    # instance that does not name iris_assets.instance.IrisInstance.
    ride_out_postgres_restarts()

    # In a code server, run workers are forked from a preloaded forkserver (execution/run_workers.py).
    fork_run_workers()
    return definitions
