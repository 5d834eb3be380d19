"""Every environment variable the project honours, in one table: name, default, meaning.

Nothing else in the package reads the environment; it asks ``current()``, which
parses and validates all project settings together (once per distinct
environment) and raises ``SettingError`` naming the variable, its value and what
is allowed. The README's environment table is ``markdown_table()`` (a test
compares them, and prints the table to paste when they differ).

Three kinds of variable:

* project settings, parsed into the frozen ``Settings``;
* credentials, never parsed into anything stored: resources read them as
  ``dg.EnvVar`` references (see ``credential_env_vars``);
* process defaults: MLflow's and onnxruntime's own variables, which the package
  sets when the environment does not (``apply_process_defaults``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXPERIMENT = "relatorio-II-iris-pipeline"
DEFAULT_TUNING_EXPERIMENT = "iris-hyperparameter-tuning"
# Family-neutral: it holds every model family's versions (it was "iris-random-forest" when the
# forest was the only model; IRIS_REGISTERED_MODEL=iris-random-forest keeps that name).
DEFAULT_REGISTERED_MODEL = "iris-classifier"
DEFAULT_MLFLOW_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` / `mlflow server` listen by default
DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"  # where `dagster dev` listens by default
DEFAULT_CELERY_BROKER_URL = "pyamqp://guest@127.0.0.1:5672//"
# The default split scores exactly 0.90: a 0.9 gate would sit on the edge.
DEFAULT_MIN_ACCURACY = 0.85
DEFAULT_OUTAGE_LIMIT_SECONDS = 60


class SettingError(ValueError):
    """An environment variable holds a value the project cannot use; the message says which and why."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, its default as documented, what it means."""

    name: str
    default: str
    meaning: str
    kind: str = "project"  # "project", "credential" or "process default"
    parse: Callable[[str], Any] = str


def _setting(name: str, default: str, meaning: str, parse: Callable[[str], Any] = str) -> Any:
    """A field of ``Settings`` read from ``name`` (unset or empty: the field's default)."""
    return field(default=None, metadata={"setting": Setting(name, default, meaning, "project", parse)})


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("a non-empty value")
    return value.strip()


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if number < low:
            raise ValueError(f"a whole number >= {low}")
        return number

    return parse


def _float_between(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and low <= number <= high):
            raise ValueError(f"a number from {low} to {high}")
        return number

    return parse


def _one_of(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"one of {list(allowed)}")
        return value

    return parse


def _path(value: str) -> Path:
    return Path(_non_empty(value)).expanduser()


@dataclass(frozen=True)
class Settings:
    """The project settings of one environment, parsed; ``None`` where unset and derived."""

    state_dir: Path = _setting(
        "IRIS_STATE_DIR",
        "`.iris_state/`",
        "local state folder: embedded MLflow store, Dagster home, landing folder",
        _path,
    )
    tracking_uri: Optional[str] = _setting(
        "MLFLOW_TRACKING_URI",
        "`sqlite:///.iris_state/mlflow.db`",
        "MLflow tracking store (a `user:password@` in it moves to the two variables below when the package loads)",
        _non_empty,
    )
    experiment: str = _setting("IRIS_MLFLOW_EXPERIMENT", f"`{DEFAULT_EXPERIMENT}`", "MLflow experiment", _non_empty)
    tuning_experiment: str = _setting(
        "IRIS_TUNING_EXPERIMENT",
        f"`{DEFAULT_TUNING_EXPERIMENT}`",
        "MLflow experiment of hyperparameter sweeps (a parent run per sweep, a child per trial)",
        _non_empty,
    )
    default_executor: str = _setting(
        "IRIS_DEFAULT_EXECUTOR",
        "`in_process`",
        "the executor of runs whose config names none (`in_process`, `multiprocess` or `celery`)",
        _one_of("in_process", "multiprocess", "celery"),
    )
    run_worker_start: str = _setting(
        "IRIS_RUN_WORKER_START",
        "`forkserver`",
        "how a code server starts a run's process: `forkserver` (forked from one that imported the libraries "
        "once) or `spawn` (Dagster's own: a new interpreter per run)",
        _one_of("forkserver", "spawn"),
    )
    mlflow_ui_url: Optional[str] = _setting(
        "MLFLOW_UI_URL",
        f"the tracking URI if http(s), else `{DEFAULT_MLFLOW_UI_URL}`",
        "base URL of the MLflow UI in links",
        _non_empty,
    )
    dagster_ui_url: str = _setting(
        "DAGSTER_UI_URL",
        f"`{DEFAULT_DAGSTER_UI_URL}`",
        "base URL of the Dagster UI, for the MLflow run's `dagster_run_url` tag",
        _non_empty,
    )
    min_accuracy: float = _setting(
        "IRIS_MIN_ACCURACY",
        f"`{DEFAULT_MIN_ACCURACY}`",
        "default threshold of the quality gate (test accuracy, 0 to 1)",
        _float_between(0.0, 1.0),
    )
    registered_model: str = _setting(
        "IRIS_REGISTERED_MODEL",
        f"`{DEFAULT_REGISTERED_MODEL}`",
        "registered model name in MLflow (every family's versions; `iris-random-forest` before model families)",
        _non_empty,
    )
    landing_dir: Optional[Path] = _setting(
        "IRIS_LANDING_DIR", "`.iris_state/landing/`", "folder the new-data sensor watches", _path
    )
    sensor_interval_seconds: int = _setting(
        "IRIS_SENSOR_INTERVAL_SECONDS", "`30`", "how often the new-data sensor looks", _int_at_least(1)
    )
    orphan_sweep_seconds: int = _setting(
        "IRIS_ORPHAN_SWEEP_SECONDS",
        "`30`",
        "how often the housekeeping sensors look (MLflow runs left RUNNING, dead run workers)",
        _int_at_least(1),
    )
    retrain_cron: str = _setting("IRIS_RETRAIN_CRON", "`0 3 * * *`", "the retraining schedule's cron", _non_empty)
    retrain_timezone: str = _setting("IRIS_RETRAIN_TIMEZONE", "`UTC`", "the retraining schedule's timezone", _non_empty)
    max_csv_bytes: int = _setting(
        "IRIS_MAX_CSV_BYTES",
        "`67108864` (64 MiB)",
        "largest data file `raw_data` and the sensor accept",
        _int_at_least(1),
    )
    asset_storage: Optional[str] = _setting(
        "IRIS_ASSET_STORAGE",
        "`<DAGSTER_HOME>/storage/assets`",
        "where asset values are kept between steps: a folder, or `s3://bucket/prefix` (needed when steps run "
        "on several machines)",
        _non_empty,
    )
    aws_endpoint_url: Optional[str] = _setting(
        "AWS_ENDPOINT_URL", "AWS S3", "the S3-compatible server of `IRIS_ASSET_STORAGE` (SeaweedFS, MinIO)", _non_empty
    )
    celery_broker_url: str = _setting(
        "IRIS_CELERY_BROKER_URL",
        "`pyamqp://guest@127.0.0.1:5672//`",
        "the Celery executor's broker (RabbitMQ); its password is read here, never written into run config",
        _non_empty,
    )
    celery_result_backend: Optional[str] = _setting(
        "IRIS_CELERY_RESULT_BACKEND",
        "the instance's PostgreSQL (`db+` and `DAGSTER_POSTGRES_URL`), else `rpc://`",
        "where Celery workers leave step results for the run worker; a database keeps them through a broker "
        "restart, `rpc://` sends them over the broker (a restart then fails the runs in flight)",
        _non_empty,
    )
    dagster_postgres_url: Optional[str] = _setting(
        "DAGSTER_POSTGRES_URL",
        "unset (a local instance keeps its storage in sqlite)",
        "PostgreSQL of the deployment's Dagster instance (`deploy/dagster.yaml`), read by Dagster itself",
        _non_empty,
    )
    outage_limit_seconds: int = _setting(
        "IRIS_OUTAGE_LIMIT_SECONDS",
        f"`{DEFAULT_OUTAGE_LIMIT_SECONDS}`",
        "how long a run waits for a service it needs (tracking server, object store, Celery broker) to answer "
        "again, at its start and in any call, before it fails naming the service",
        _int_at_least(1),
    )
    dagster_home: Optional[Path] = _setting(
        "DAGSTER_HOME",
        "`.iris_state/dagster_home/` (the `.env` that `scripts/install.sh` writes; `scripts/env.sh`)",
        "the Dagster instance the CLI, UI and daemon share",
        _path,
    )

    def __post_init__(self) -> None:
        defaults = {
            "state_dir": PROJECT_ROOT / ".iris_state",
            "experiment": DEFAULT_EXPERIMENT,
            "tuning_experiment": DEFAULT_TUNING_EXPERIMENT,
            "default_executor": "in_process",
            "run_worker_start": "forkserver",
            "dagster_ui_url": DEFAULT_DAGSTER_UI_URL,
            "min_accuracy": DEFAULT_MIN_ACCURACY,
            "registered_model": DEFAULT_REGISTERED_MODEL,
            "sensor_interval_seconds": 30,
            "orphan_sweep_seconds": 30,
            "retrain_cron": "0 3 * * *",
            "retrain_timezone": "UTC",
            "max_csv_bytes": 64 * 1024 * 1024,
            "celery_broker_url": DEFAULT_CELERY_BROKER_URL,
            "outage_limit_seconds": DEFAULT_OUTAGE_LIMIT_SECONDS,
        }
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        values: dict[str, Any] = {}
        for item in fields(cls):
            setting: Setting = item.metadata["setting"]
            raw = environ.get(setting.name)
            if raw is None or raw == "":
                continue
            try:
                values[item.name] = setting.parse(raw)
            except ValueError as error:  # the parsers below say what is allowed
                raise SettingError(f"${setting.name}={raw!r} is not allowed: expected {error}") from None
        return cls(**values)

    # -- derived ---------------------------------------------------------------------------------

    @property
    def embedded_tracking_uri(self) -> str:
        return f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def resolved_tracking_uri(self) -> str:
        return self.tracking_uri or self.embedded_tracking_uri

    @property
    def resolved_celery_result_backend(self) -> str:
        if self.celery_result_backend:
            return self.celery_result_backend
        database = self.dagster_postgres_sqlalchemy_url
        return f"db+{database}" if database else "rpc://"

    @property
    def dagster_postgres_sqlalchemy_url(self) -> Optional[str]:
        """``DAGSTER_POSTGRES_URL`` with the driver the deployment installs named, for SQLAlchemy."""
        if not self.dagster_postgres_url:
            return None
        scheme, _, rest = self.dagster_postgres_url.partition("://")
        return f"{'postgresql+psycopg2' if scheme in ('postgres', 'postgresql') else scheme}://{rest}"

    @property
    def resolved_landing_dir(self) -> Path:
        return self.landing_dir or self.state_dir / "landing"

    @property
    def resolved_dagster_home(self) -> Path:
        return self.dagster_home or self.state_dir / "dagster_home"

    def ensure_state_dir(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return self.state_dir


PROJECT_SETTINGS: tuple[Setting, ...] = tuple(item.metadata["setting"] for item in fields(Settings))

# Credentials of an MLflow tracking server, by the MlflowRun resource field that holds them.
CREDENTIALS: dict[str, Setting] = {
    "tracking_username": Setting(
        "MLFLOW_TRACKING_USERNAME", "unset", "MLflow server user (read as `dg.EnvVar`, never stored)", "credential"
    ),
    "tracking_password": Setting(
        "MLFLOW_TRACKING_PASSWORD", "unset", "MLflow server password (read as `dg.EnvVar`, never stored)", "credential"
    ),
    "tracking_token": Setting(
        "MLFLOW_TRACKING_TOKEN", "unset", "MLflow server token (read as `dg.EnvVar`, never stored)", "credential"
    ),
}
# Credentials of the S3 bucket of $IRIS_ASSET_STORAGE, read by s3fs (botocore) from the environment
# of each process that stores values: the run worker and Celery workers, never the config.
STORAGE_CREDENTIALS: tuple[Setting, ...] = (
    Setting("AWS_ACCESS_KEY_ID", "unset", "S3 key of `IRIS_ASSET_STORAGE` (read by s3fs, never stored)", "credential"),
    Setting(
        "AWS_SECRET_ACCESS_KEY", "unset", "S3 secret of `IRIS_ASSET_STORAGE` (read by s3fs, never stored)", "credential"
    ),
)

# Other programs' variables the package sets when unset. Telemetry off: MLflow writes an
# installation id under ~/.config, onnxruntime a device id under ~/.cache. Retries against
# a tracking server bounded by the outage limit: MLflow's defaults (7 retries, backoff
# factor 2, 120 s per request) keep a step waiting minutes on a server that is down;
# these give up once the backoff has covered $IRIS_OUTAGE_LIMIT_SECONDS.
PROCESS_DEFAULTS: tuple[Setting, ...] = (
    Setting("MLFLOW_DISABLE_TELEMETRY", "`true`", "MLflow telemetry off", "process default"),
    Setting("ORT_DISABLE_TELEMETRY", "`1`", "onnxruntime telemetry off", "process default"),
    Setting(
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "from `IRIS_OUTAGE_LIMIT_SECONDS` (`6` for 60 s)",
        "retries of a tracking server request: the fewest whose backoff covers the outage limit",
        "process default",
    ),
    Setting("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "`1`", "backoff between those retries (s)", "process default"),
    Setting("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "`0.5`", "jitter added to the backoff (s)", "process default"),
    Setting("MLFLOW_HTTP_REQUEST_TIMEOUT", "`30`", "time-out of one tracking server request (s)", "process default"),
    Setting(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "`false`", "no download progress bars on stderr", "process default"
    ),
    # MLflow prints "View run ... at: <URL>" when a run ends; the binding logs the link
    # itself, without the credentials a URL can carry.
    Setting(
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "`true`", "MLflow prints no run links to stdout", "process default"
    ),
)

ALL_SETTINGS: tuple[Setting, ...] = (*PROJECT_SETTINGS, *CREDENTIALS.values(), *STORAGE_CREDENTIALS, *PROCESS_DEFAULTS)


# The one `dagster.yaml` of a local instance: no telemetry; pools of one step (one registry
# promotion at a time, registry/promotion.py); the queue looked at every second, not Dagster's
# 5 (a sweep is a run, then its trials' runs: two waits in the queue); runs print INFO and
# above on the terminal (the event log keeps every event). deploy/dagster.yaml is the compose stack's.
LOCAL_DAGSTER_YAML = (
    "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"
    "run_queue:\n  dequeue_interval_seconds: 1\n"
    "python_logs:\n  python_log_level: INFO\n"
)
# What earlier versions wrote: `iris-runs init` brings a file still holding one exactly (never
# edited by its user) up to LOCAL_DAGSTER_YAML, so a pulled change reaches existing instances.
EARLIER_LOCAL_DAGSTER_YAMLS = (
    "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"
    "python_logs:\n  python_log_level: INFO\n",
)

# Dagster CLI commands that execute runs in their own process on the instance of $DAGSTER_HOME,
# or, with it unset, on a temporary one they delete when they exit (runs no UI ever shows).
_RUNNING_CLI_COMMANDS = {
    "dagster": (("job", "execute"), ("asset", "materialize")),
    "dg": (("launch",),),
    "iris-runs": (("reexecute",),),
}


def dagster_cli_run_command(argv: Optional[list[str]] = None) -> Optional[str]:
    """`dagster job execute` / `dagster asset materialize` / `dg launch` / `iris-runs reexecute` when this
    process is one (a terminal command that runs a run itself), else None."""
    import sys

    argv = sys.argv if argv is None else argv
    if not argv:
        return None
    program = Path(argv[0]).name
    words = [arg for arg in argv[1:] if not arg.startswith("-")]
    for command in _RUNNING_CLI_COMMANDS.get(program, ()):
        if tuple(words[: len(command)]) == command:
            return " ".join((program, *command))
    return None


def refuse_temporary_instance(argv: Optional[list[str]] = None) -> Optional[str]:
    """Why a Dagster CLI run must not start here (it would vanish with a temporary instance), else None."""
    command = dagster_cli_run_command(argv)
    if command is None or os.environ.get("DAGSTER_HOME"):
        return None
    return (
        f"{command}: $DAGSTER_HOME is not set, so this run would go to a temporary Dagster instance that is "
        f"deleted when the command exits and never shows in the UI. Run it from the repository root "
        f"({PROJECT_ROOT}), whose .env sets it (bash scripts/install.sh writes that file), or set it: "
        f"export DAGSTER_HOME={current().resolved_dagster_home}"
    )


def use_project_instance() -> Path:
    """$DAGSTER_HOME, set to the project's instance (``.iris_state/dagster_home``) when unset, for the
    project's own commands; returns it."""
    home = current().resolved_dagster_home
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def current() -> Settings:
    """The settings of this process's environment now, parsed and validated."""
    return _parsed(tuple(os.environ.get(setting.name) for setting in PROJECT_SETTINGS))


@lru_cache(maxsize=16)
def _parsed(values: tuple[Optional[str], ...]) -> Settings:
    return Settings.from_environ(
        {setting.name: value for setting, value in zip(PROJECT_SETTINGS, values, strict=True) if value is not None}
    )


def apply_process_defaults() -> None:
    for setting in PROCESS_DEFAULTS:
        os.environ.setdefault(setting.name, _default_value(setting))
    _move_uri_credentials()


# Process defaults that follow from a project setting, not from a constant.
DERIVED_PROCESS_DEFAULTS = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES",)


def _default_value(setting: Setting) -> str:
    if setting.name == "MLFLOW_HTTP_REQUEST_MAX_RETRIES":
        # Applied at import: only this setting is read, so another bad setting is reported
        # where settings are validated (one line), not by an import error here.
        try:
            limit = int(os.environ.get("IRIS_OUTAGE_LIMIT_SECONDS", DEFAULT_OUTAGE_LIMIT_SECONDS))
        except ValueError:
            limit = DEFAULT_OUTAGE_LIMIT_SECONDS  # refused, naming it, when settings are validated
        return str(http_retries_within(max(limit, 1)))
    return setting.default.strip("`")


def http_retries_within(seconds: float) -> int:
    """The fewest retries whose backoff reaches ``seconds``: urllib3 (MLflow's client) waits
    0, then factor x 2, 4, 8... seconds (factor 1 here) before the 1st, 2nd, 3rd... retry."""
    retries, waited = 1, 0.0
    while waited < seconds:
        retries += 1
        waited += 2 ** (retries - 1)
    return retries


def _move_uri_credentials() -> None:
    """Credentials in $MLFLOW_TRACKING_URI's user-info move to MLflow's credential variables.

    MLflow puts the tracking URI in its error messages and printed links, and this
    process's children inherit it; without ``user:password@`` it can be shown. An
    explicit $MLFLOW_TRACKING_USERNAME / $MLFLOW_TRACKING_PASSWORD is kept.
    """
    from urllib.parse import unquote, urlsplit

    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return
    os.environ["MLFLOW_TRACKING_URI"] = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    if parts.username:
        os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(parts.username))
    if parts.password:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(parts.password))


def process_default(name: str) -> str:
    """The value in effect of a process default (the environment's, else the package's)."""
    (setting,) = [s for s in PROCESS_DEFAULTS if s.name == name]
    return os.environ.get(name) or _default_value(setting)


def credential_env_vars() -> dict[str, str]:
    """Resource field -> the variable holding that credential, for those set in this environment."""
    return {field_name: s.name for field_name, s in CREDENTIALS.items() if os.environ.get(s.name)}


def environment_values(names: list[str]) -> dict[str, str]:
    """The values of the named variables that are set (the resource's ``env_to_tag``)."""
    return {name: os.environ[name] for name in names if name in os.environ}


def child_environment(bin_dir: Path, defaults: Mapping[str, str]) -> dict[str, str]:
    """This process's environment for a child command: ``bin_dir`` first on PATH (as in an
    activated venv: tools start `uvicorn`, `dagster` from PATH) and ``defaults`` where unset."""
    return {**defaults, **os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def export(variables: Mapping[str, str]) -> None:
    """Set variables in this process's environment (the resource's ``env``; credentials for MLflow's client)."""
    os.environ.update(variables)


def snapshot(names: tuple[str, ...]) -> dict[str, Optional[str]]:
    """The values of ``names`` now (None: unset), for ``restore``."""
    return {name: os.environ.get(name) for name in names}


def restore(saved: Mapping[str, Optional[str]]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def markdown_table() -> str:
    lines = ["| variable | meaning | default |", "|---|---|---|"]
    lines += [f"| `{s.name}` | {s.meaning} | {s.default} |" for s in ALL_SETTINGS]
    return "\n".join(lines)
