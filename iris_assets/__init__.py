"""The Iris ML pipeline as Dagster assets, each materialisation one MLflow run."""

import sys

from iris_assets import settings

# Set here, in the code location, so every run worker and step process inherits them.
settings.apply_process_defaults()

# A CLI run on a temporary instance would vanish with it: refuse in one line, before any work.
# A bad setting, in such a command, is one line too (a code server raises it: the UI shows it).
_refusal = settings.refuse_temporary_instance()
if _refusal:
    sys.exit(_refusal)
try:
    from iris_assets.definitions import defs
except settings.SettingError as error:
    if settings.dagster_cli_run_command() is None:
        raise
    sys.exit(f"{settings.dagster_cli_run_command()}: {error}")
# A terminal command's run config (-c FILE) that a step would refuse is one line, before a run
# exists; Dagster's own config errors in such a command are one line too (config_errors.py).
if settings.dagster_cli_run_command() is not None:
    from iris_assets import config_errors

    config_errors.install_cli_excepthook(defs)
    _refused_config = config_errors.cli_refusal(defs)
    if _refused_config:
        print(_refused_config, file=sys.stderr)
        sys.exit(config_errors.EXIT_STATUS)
from iris_assets.execution.run_workers import fork_run_workers  # noqa: E402

# In a code server, run workers are forked from a preloaded forkserver (execution/run_workers.py).
fork_run_workers()

__all__ = ["defs"]
