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
run queued children: it is refused in one line naming the pipelines' jobs instead, as is
an instance whose run coordinator does not queue runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Optional

import dagster as dg

from iris_assets import settings
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


def refuse_spanning(job: dg.JobDefinition, run: dg.DagsterRun, command: Optional[str] = None) -> None:
    """Raise SpansPipelines, in one line naming them, when ``run`` holds assets of several pipelines."""
    by_group = pipelines_of(job, _selected(job, run))
    if len(by_group) > 1:
        raise SpansPipelines(
            f"{f'{command}: ' if command else ''}this run spans the pipelines {', '.join(sorted(by_group))}: one run "
            "is one MLflow run, so run one pipeline at a time (its job, or its asset group), or launch it from the "
            "UI, whose queue runs one run per pipeline"
        )


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
        refuse_spanning(job, run, command)
    recon = plan_context.reconstructable_job
    children = []
    for group, group_keys in sorted(by_group.items()):
        subset = recon.get_subset(asset_selection=frozenset(group_keys)).get_definition()
        child = instance.create_run_for_job(
            job_def=subset,
            run_config=_config_for(subset, run.run_config or {}),
            tags={**_user_tags(run.tags), SPLIT_FROM_TAG: run.run_id},
            asset_selection=frozenset(group_keys),
            remote_job_origin=run.remote_job_origin,
            job_code_origin=run.job_code_origin,
            status=dg.DagsterRunStatus.NOT_STARTED,
        )
        instance.submit_run(child.run_id, workspace=None)  # type: ignore[arg-type]  # the queue needs none
        children.append(child.run_id)
        plan_context.log.info(f"pipeline {group}: run {child.run_id} ({len(group_keys)} assets)")
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
