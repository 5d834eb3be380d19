"""A run that spans several pipelines becomes one run per pipeline, before its first step.

One Dagster run is one MLflow run, in its pipeline's experiment. In a code location that
holds several pipelines (``iris_assets.datasets.locations:all_pipelines``: Iris, Wine,
Digits, yours; each an asset group), "Materialize all" on the global lineage page launches
one run of every asset. Dagster's UI offers no per-group launch from that button (across
code locations it refuses with a dialog), so the run worker does it: before any step, it
creates one run per pipeline (the same job, its assets and their checks, the run config of
its steps, the parent's tags), submits them to the run queue, logs their ids and ends
without a step (SUCCESS, no MLflow run). Each child is then an ordinary run: one MLflow
run in its pipeline's experiment.

A terminal command (``dagster asset materialize --select '*'``) has no daemon behind it to
run queued children: it is refused in one line naming the pipelines instead, as is an
instance whose run coordinator does not queue runs. The Dagster calls that create and queue
a run from inside a run are private: ``dagster_private.queue_asset_subset_run``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Optional

import dagster as dg

from iris_assets import dagster_private, settings
from iris_assets.config_errors import MAX_RETRIES_TAG

SPLIT_FROM_TAG = "iris/split_from"  # on each child run: the run it was split from


class SpansPipelines(dg.DagsterError, ValueError):
    """A run over several pipelines that cannot be split here; its message is one line."""


def pipelines_of(job: dg.JobDefinition, keys: Any) -> dict[str, set[dg.AssetKey]]:
    """The selected asset keys of ``job`` by their asset group (a pipeline)."""
    graph = job.asset_layer.asset_graph
    by_group: dict[str, set[dg.AssetKey]] = defaultdict(set)
    for key in keys:
        if graph.has(key) and graph.get(key).is_materializable:
            by_group[graph.get(key).group_name].add(key)
    return dict(by_group)


def _selected(job: dg.JobDefinition, run: dg.DagsterRun) -> Any:
    # None, or empty (execute_in_process of a whole asset job): every asset of the job.
    return run.asset_selection or job.asset_layer.asset_graph.get_all_asset_keys()


def _spanning(by_group: Mapping[str, Any], command: Optional[str] = None) -> SpansPipelines:
    return SpansPipelines(
        f"{f'{command}: ' if command else ''}this run spans the pipelines {', '.join(sorted(by_group))}: one run "
        "is one MLflow run, so run one pipeline at a time (its job, or its asset group), or launch it from the "
        "UI, whose queue runs one run per pipeline"
    )


def refuse_spanning(job: dg.JobDefinition, run: dg.DagsterRun) -> None:
    """Raise SpansPipelines, in one line naming them, when ``run`` holds assets of several pipelines."""
    by_group = pipelines_of(job, _selected(job, run))
    if len(by_group) > 1:
        raise _spanning(by_group)


def split_by_pipeline(plan_context: Any) -> list[str]:
    """In the run worker, before any step: the ids of the runs this run was split into (one per pipeline
    it spans, submitted to the queue), or [] when it spans one pipeline (it then runs as it is)."""
    run: dg.DagsterRun = plan_context.dagster_run
    job = plan_context.job.get_definition()
    by_group = pipelines_of(job, _selected(job, run))
    if len(by_group) <= 1:
        return []
    command = settings.dagster_cli_run_command()
    instance: dg.DagsterInstance = plan_context.instance
    if command is not None or not isinstance(instance.run_coordinator, dg.QueuedRunCoordinator):
        instance.add_run_tags(run.run_id, {MAX_RETRIES_TAG: "0"})  # the same run would be refused again
        raise _spanning(by_group, command)
    children = []
    for group, group_keys in sorted(by_group.items()):
        child = dagster_private.queue_asset_subset_run(
            plan_context,
            group_keys,
            run_config=lambda subset: _config_for(subset, run.run_config or {}),
            tags={**_user_tags(run.tags), SPLIT_FROM_TAG: run.run_id},
        )
        children.append(child)
        plan_context.log.info(f"pipeline {group}: run {child} ({len(group_keys)} assets)")
    return children


def _config_for(job: dg.JobDefinition, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The run config of a child: its own steps' config (the others' would be refused as unknown)."""
    config = dict(run_config)
    ops = config.get("ops")
    if isinstance(ops, Mapping):
        names = {node.name for node in job.graph.nodes}
        config["ops"] = {name: value for name, value in ops.items() if name in names}
    return config


def _user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The parent's tags a child keeps: not Dagster's own bookkeeping of the parent (its retries, its step
    selection), which the child gets afresh."""
    return {key: value for key, value in tags.items() if not key.startswith(("dagster/", ".dagster/"))}
