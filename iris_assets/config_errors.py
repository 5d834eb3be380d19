"""A refused run config is one line: the step, the field, the value and what is allowed.

Two validations refuse run config, and both are turned into that line here:

* Dagster's own, against the config schema (types, enums, unknown keys): a
  ``DagsterInvalidConfigError``, raised before a run exists;
* each step's ``dg.Config`` (pydantic: ranges, the model family's own fields), which
  Dagster only runs inside the step: the steps before it would have run, logged to
  MLflow, and the step would fail with pydantic's multi-line dump.

``refusal(job, run_config)`` runs both for every step of a run, before any step:

* in the run worker (``execution.settling``, every executor): the run fails before its
  first step with the line, no step runs, no MLflow run is created (the binding creates
  one only when an asset logs), and the run is not retried (``dagster/max_retries: 0``):
  the same config fails the same way twice. This covers the Launchpad, schedules,
  sensors, sweeps' trials and ``dg.execute_job``.
* in the ``mlflow`` resource's set-up, for a run started from a JobDefinition in this process
  (``execute_in_process``, ``dg.materialize``), where Dagster's own executor replaces the job's:
  ``ConfigRefused`` is raised with the line, before the first step, no MLflow run;
* in a terminal command (``dg launch -c``, ``dagster job execute -c``, ``dagster asset
  materialize -c``), when the code location is imported: the command prints the line
  and exits 2 before a run exists. Dagster's own config errors that still escape such a
  command (a config that fits no asset selection, say) print as the line too, instead
  of a traceback (``install_cli_excepthook``).

Example: ``model: n_estimators=-3 is not allowed: expected an integer greater than 0 and at most 10000``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import dagster as dg
import pydantic

from iris_assets import dagster_private, settings

# Dagster's tag for a run's automatic retries (documented): a refused config is not retried.
MAX_RETRIES_TAG = "dagster/max_retries"
EXIT_STATUS = 2  # a refused command line, as click's usage errors

_BOUNDS = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
_SCALARS = {"Int": "an integer", "Float": "a number", "String": "a string", "Bool": "true or false"}
_EXPECTED_SHAPE = re.compile(r'\s*Expected: ".*$', re.S)


class ConfigRefused(dg.DagsterError, ValueError):
    """A run config refused before the run's first step; its message is the one line. A DagsterError,
    so Dagster raises it as it is from a resource's set-up (``refuse_in_process_run``), unwrapped."""


# -- pydantic: a step's dg.Config ----------------------------------------------------------------


def _kind(config_class: type[pydantic.BaseModel], field: str) -> str:
    annotation = getattr(config_class.model_fields.get(field), "annotation", None)
    text = str(annotation)
    return "an integer" if annotation is int or "int]" in text else "a number"


def _allowed_range(config_class: type[pydantic.BaseModel], field: str) -> str:
    """``an integer greater than 0 and at most 10000``: the field's bounds, from its declaration."""
    info = config_class.model_fields.get(field)
    bounds = [
        f"{_BOUNDS[name]} {_number(getattr(item, name))}"
        for item in (info.metadata if info is not None else [])
        for name in _BOUNDS
        if getattr(item, name, None) is not None
    ]
    return f"{_kind(config_class, field)} {' and '.join(bounds)}".strip()


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() and abs(value) < 1e15 else str(value)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _pydantic_part(error: Mapping[str, Any], config_class: type[pydantic.BaseModel], given: Mapping[str, Any]) -> str:
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if not field:  # a rule over several fields (model_validator): its message names them
        return message
    # The value as written in the run config (Dagster turns a Float field's -1 into -1.0).
    value = given[field] if field in given else error["input"]
    shown = f"{field}={_shown(value)}"
    kind = error["type"]
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal") and "." not in field:
        return f"{shown} is not allowed: expected {_allowed_range(config_class, field)}"
    if kind == "literal_error":
        return f"{shown} is not allowed: expected one of {error['ctx']['expected']}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{shown} is not allowed: expected an integer"
    if kind in ("float_parsing", "float_type"):
        return f"{shown} is not allowed: expected a number"
    if kind == "extra_forbidden":
        return f"{field} is not a field of this step: its fields are {', '.join(config_class.model_fields)}"
    return f"{shown} is not allowed: {message[:1].lower()}{message[1:]}"


def pydantic_refusal(
    step: str,
    error: pydantic.ValidationError,
    config_class: type[pydantic.BaseModel],
    given: Optional[Mapping[str, Any]] = None,
) -> str:
    """``model: n_estimators=-3 is not allowed: expected an integer greater than 0 and at most 10000``;
    ``given``: the step's config as written, whose values are shown when it has them."""
    parts = [_pydantic_part(item, config_class, given or {}) for item in error.errors()]
    return f"{step}: {'; '.join(parts)}"


# -- Dagster's config schema ---------------------------------------------------------------------


def _path(error: Any) -> list[str]:
    names = []
    for entry in getattr(getattr(error, "stack", None), "entries", ()):
        if getattr(entry, "field_name", None) is not None:
            names.append(str(entry.field_name))
        elif getattr(entry, "list_index", None) is not None:
            names.append(f"[{entry.list_index}]")
    return names


def _expected(type_snap: Any) -> str:
    if type_snap is None:
        return "another type"
    if getattr(type_snap, "enum_values", None):
        return "one of " + ", ".join(str(value.value) for value in type_snap.enum_values)
    name = type_snap.given_name or type_snap.key
    return _SCALARS.get(name, name)


def _dagster_part(error: Any, job: Optional[dg.JobDefinition]) -> str:
    path = _path(error)
    if len(path) >= 3 and path[0] == "ops" and path[2] == "config":
        where, field = f"{path[1]}: ", ".".join(path[3:])
    else:
        where, field = (f"{'.'.join(path)}: " if path else ""), ""
    data = getattr(error, "error_data", None)
    reason = getattr(getattr(error, "reason", None), "name", "")
    if reason == "RUNTIME_TYPE_MISMATCH" and data is not None:
        shown = f"{field}={data.value_rep}" if field else data.value_rep
        return f"{where}{shown} is not allowed: expected {_expected(data.config_type_snap)}"
    if reason in ("FIELD_NOT_DEFINED", "FIELDS_NOT_DEFINED") and data is not None:
        names = ", ".join([data.field_name] if hasattr(data, "field_name") else list(data.field_names))
        known = ", ".join(_known_fields(path, job))
        if list(path) == ["ops"]:
            return f"ops: {names} is not a step of this job" + (f": its steps are {known}" if known else "")
        return f"{where}{names} is not a field here" + (f": the fields are {known}" if known else "")
    return f"{where}{_EXPECTED_SHAPE.sub('', str(error.message)).strip()}"


def _known_fields(path: Sequence[str], job: Optional[dg.JobDefinition]) -> list[str]:
    """The keys allowed where an unknown one was given (steps, or a step's config fields), when known."""
    if job is None:
        return []
    if list(path) == ["ops"]:
        return sorted(node.name for node in job.graph.nodes)
    if len(path) == 3 and path[0] == "ops" and path[2] == "config" and job.graph.has_node_named(path[1]):
        config_class = dagster_private.step_config_class(job.graph.node_named(path[1]).definition)
        return list(config_class.model_fields) if config_class is not None else []
    return []


def dagster_refusal(error: dg.DagsterInvalidConfigError, job: Optional[dg.JobDefinition] = None) -> str:
    """``model: family='random_tree' is not allowed: expected one of random_forest, svm, …``."""
    parts = [_dagster_part(item, job) for item in getattr(error, "errors", None) or []]
    return "; ".join(parts) if parts else str(error).strip().splitlines()[0]


# -- a run's config, before its first step -------------------------------------------------------


def refusal(job: dg.JobDefinition, run_config: Mapping[str, Any], steps: Optional[set[str]] = None) -> Optional[str]:
    """Why ``run_config`` is refused for ``job`` (its ``steps``, default all), as one line, else None."""
    try:
        processed = dg.validate_run_config(job, dict(run_config))
    except dg.DagsterInvalidConfigError as error:
        return dagster_refusal(error, job)
    for name, node_config in sorted((processed.get("ops") or {}).items()):
        if (steps is not None and name not in steps) or not job.graph.has_node_named(name):
            continue
        config_class = dagster_private.step_config_class(job.graph.node_named(name).definition)
        if config_class is None or not isinstance(node_config, Mapping) or node_config.get("config") is None:
            continue
        try:
            dagster_private.step_config(config_class, node_config["config"])
        except pydantic.ValidationError as error:
            written = ((run_config.get("ops") or {}).get(name) or {}).get("config")
            return pydantic_refusal(name, error, config_class, written if isinstance(written, Mapping) else None)
    return None


def refuse_before_the_first_step(plan_context: Any, execution_plan: Any) -> None:
    """In the run worker, before any step: raise ConfigRefused naming the first refused value (the run
    then fails with that line and is not retried), else nothing."""
    steps = set()
    for key in execution_plan.step_keys_to_execute:
        handle = execution_plan.get_step_by_key(key).node_handle
        while handle.parent is not None:
            handle = handle.parent
        steps.add(handle.name)
    run = plan_context.dagster_run
    line = refusal(plan_context.job.get_definition(), run.run_config or {}, steps)
    if line is None:
        return
    plan_context.instance.add_run_tags(run.run_id, {MAX_RETRIES_TAG: "0"})
    raise ConfigRefused(line)


# Each project pipeline's Definitions, by its job's name: what a run without a job origin is checked against.
_DEFINITIONS: dict[str, dg.Definitions] = {}


def remember_definitions(pipeline_job: str, definitions: dg.Definitions) -> dg.Definitions:
    """Record the Definitions holding ``pipeline_job`` (Iris's, a dataset's), for ``refuse_in_process_run``."""
    _DEFINITIONS[pipeline_job] = definitions
    return definitions


def refuse_in_process_run(context: dg.InitResourceContext, pipeline_job: str) -> None:
    """In the ``mlflow`` resource's set-up, before any step of a run started from a JobDefinition in this
    process (``execute_in_process``, ``dg.materialize``: no job origin; Dagster swaps in its own executor,
    so ``refuse_before_the_first_step`` does not run): raise ConfigRefused naming the first refused value.
    Dagster runs resource set-up before the first step and raises a DagsterError from it as it is."""
    run = context.run
    if run is None or run.job_code_origin is not None:
        return
    definitions = _DEFINITIONS.get(pipeline_job)
    if definitions is None:
        return
    try:
        job = definitions.resolve_job_def(run.job_name)
    except Exception:  # dg.materialize's ephemeral job: the location's assets, all in its global asset job
        job = definitions.resolve_implicit_global_asset_job_def()
    from iris_assets.execution.split import refuse_spanning

    refuse_spanning(job, run)  # a run over several pipelines, where no executor of ours can split it
    line = refusal(job, run.run_config) if (run.run_config or {}).get("ops") else None
    if line is not None:
        raise ConfigRefused(line)


# -- terminal commands ---------------------------------------------------------------------------


def _command_line_options(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-c", "--config", action="append", default=[])
    parser.add_argument("--config-json")
    parser.add_argument("-j", "--job")
    parser.add_argument("--assets", "--select", dest="assets")
    options, _ = parser.parse_known_args(list(argv))
    return options


def _job_of(defs: dg.Definitions, options: argparse.Namespace) -> Optional[dg.JobDefinition]:
    """The job a terminal command runs (``--job``, else the asset job of ``--assets``/``--select``)."""
    try:
        if options.job:
            return defs.resolve_job_def(options.job)
        if options.assets:
            return defs.resolve_implicit_global_asset_job_def()
    except Exception:  # an unknown job: Dagster's command says so
        return None
    return None


def cli_refusal(defs: dg.Definitions, argv: Optional[Sequence[str]] = None) -> Optional[str]:
    """In a terminal command that runs a run with run config (``-c FILE``, ``--config-json``): the
    one line refusing that config, prefixed with the command, else None. Anything this cannot
    read (a missing file, an unknown job) is left to Dagster's command to report."""
    argv = sys.argv if argv is None else argv
    command = settings.dagster_cli_run_command(list(argv))
    if command is None:
        return None
    options = _command_line_options(argv[1:])
    if not options.config and options.config_json is None:
        return None
    job = _job_of(defs, options)
    try:
        run_config = dg.config_from_files(options.config) if options.config else json.loads(options.config_json)
    except Exception:
        return None
    if job is None or not isinstance(run_config, Mapping):
        return None
    line = refusal(job, run_config)
    return f"{command}: {line}" if line else None


def install_cli_excepthook(defs: dg.Definitions, argv: Optional[Sequence[str]] = None) -> None:
    """In a terminal command: a Dagster config error that escapes it prints as one line (exit 2), not
    as Dagster's traceback. Every other error keeps Python's own report."""
    argv = sys.argv if argv is None else argv
    command = settings.dagster_cli_run_command(list(argv))
    if command is None:
        return
    job = _job_of(defs, _command_line_options(argv[1:]))
    previous = sys.excepthook

    def hook(kind, error, traceback):
        if isinstance(error, dg.DagsterInvalidConfigError):
            print(f"{command}: {dagster_refusal(error, job)}", file=sys.stderr)
            sys.exit(EXIT_STATUS)
        previous(kind, error, traceback)

    sys.excepthook = hook
