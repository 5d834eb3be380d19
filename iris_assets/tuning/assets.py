"""The tuning group: a sweep's parent MLflow run, its trials as partitions, and the best of them.

One backfill of the group is one sweep:

* ``sweep`` (once per backfill) opens the sweep's parent MLflow run in the tuning
  experiment (``$IRIS_TUNING_EXPERIMENT``) and pins the ``splits`` of that moment: every
  trial of the sweep trains and is scored on those rows, whatever runs meanwhile;
* ``trial_model`` and ``trial_metrics`` (one partition per trial, keyed by its
  hyperparameters) train and evaluate each trial with the pipeline's own code. Each trial's
  Dagster run is one MLflow child run of the parent, bound like the pipeline's run
  (closed right, continued by a re-execution from failure);
* ``best_trial`` continues the parent run: it picks the best trial on the shared
  evaluation data, writes the summary (trials, the best one's params and metrics, a
  plot of the metric against each hyperparameter, links to the children and to the
  backfill), registers the best trial's model, which competes for ``champion`` under
  the same rule as every version, and the parent ends FINISHED with the run.

A trial that fails leaves ``best_trial`` unrun: the ``settle_sweeps`` sensor ends the
parent FAILED naming the failed trials, and once they have been re-executed and
succeeded, it runs ``best_trial``, which settles the parent FINISHED.
"""

from dataclasses import dataclass, replace
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from iris_assets import dagster_private, groups, settings
from iris_assets.data.schema import Splits
from iris_assets.evaluation.assets import evaluate_and_log
from iris_assets.packaging.assets import package_and_log
from iris_assets.packaging.onnx import DEFAULT_PARITY_ATOL, ONNX_LOGGED_MODEL
from iris_assets.plots import markdown_image, metric_by_parameter_png
from iris_assets.registry.assets import REGISTRY_POOL, RegistryConfig, register_and_promote
from iris_assets.tracking import MlflowRun
from iris_assets.tracking.store import open_experiment
from iris_assets.training.assets import ModelConfig, fit_and_log
from iris_assets.training.model import Classifier
from iris_assets.tuning.space import trial_params

TRIALS = dg.DynamicPartitionsDefinition(name="iris_trials")
SWEEP_PARENT_TAG = "iris/sweep_parent"  # on a parent run: "true"
BACKFILL_TAG = "dagster_backfill_id"
BACKFILL_URL_TAG = "dagster_backfill_url"
TRIAL_TAG = "iris/trial"  # on a child run: its trial key
FAILED_TRIALS_TAG = "failed_trials"


@dataclass(frozen=True)
class SweepRun:
    """The sweep's parent MLflow run and the data every trial uses, as the trials and the best trial find them."""

    mlflow_run_id: str
    experiment_name: str
    backfill_id: Optional[str]
    splits: Splits


class SweepConfig(dg.Config):
    experiment: Optional[str] = Field(
        default=None,
        description=f"MLflow experiment of the sweep. Default: $IRIS_TUNING_EXPERIMENT, else "
        f"{settings.DEFAULT_TUNING_EXPERIMENT!r}.",
    )


@dg.asset(group_name=groups.TUNING, kinds={"mlflow"})
def sweep(
    context: dg.AssetExecutionContext, config: SweepConfig, splits: Splits, mlflow: MlflowRun
) -> dg.Output[SweepRun]:
    """The sweep's parent MLflow run (one per backfill of the tuning group) and the splits its trials share."""
    experiment = config.experiment or settings.current().tuning_experiment
    tracking = replace(mlflow.tracking_config(), experiment_name=experiment)
    client, experiment_id = open_experiment(tracking)
    backfill = context.run.tags.get(dagster_private.BACKFILL_ID_TAG)
    tags = {
        SWEEP_PARENT_TAG: "true",
        "mlflow.runName": f"sweep-{backfill or context.run.run_id[:8]}",
        "mlflow.source.name": "dagster",
        "dagster_run_id": context.run.run_id,
        "evaluation_digest": splits.evaluation_digest,
    }
    if backfill:
        tags[BACKFILL_TAG] = backfill
        tags[BACKFILL_URL_TAG] = f"{tracking.dagster_ui_url}/runs/b/{backfill}"
    parent = client.create_run(experiment_id, tags=tags).info.run_id
    return dg.Output(
        SweepRun(parent, experiment, backfill, splits),
        metadata={
            "mlflow_run_id": parent,
            "mlflow_run_url": dg.MetadataValue.url(tracking.run_url(experiment_id, parent)),
            "experiment": experiment,
            "training_rows": len(splits.X_train),
            "evaluation_rows": len(splits.X_test),
            "evaluation_digest": splits.evaluation_digest,
        },
    )


def _as_child(mlflow: MlflowRun, sweep: SweepRun, key: str) -> None:
    # Named by its hyperparameters, so the parent's list of children reads as the grid.
    mlflow.use(
        experiment_name=sweep.experiment_name,
        parent_run_id=sweep.mlflow_run_id,
        tags={TRIAL_TAG: key, "mlflow.runName": key},
    )


@dg.asset(group_name=groups.TUNING, partitions_def=TRIALS, kinds={"scikitlearn", "onnx", "mlflow"})
def trial_model(context: dg.AssetExecutionContext, sweep: SweepRun, mlflow: MlflowRun) -> dg.Output[Classifier]:
    """One trial's forest (its hyperparameters are its partition key), logged and packaged to ONNX."""
    key = context.partition_key
    _as_child(mlflow, sweep, key)
    forest, metadata = fit_and_log(ModelConfig(**trial_params(key)), sweep.splits, mlflow)
    package_and_log(forest, sweep.splits, DEFAULT_PARITY_ATOL, mlflow)
    return dg.Output(forest, metadata={**metadata, **mlflow.link(context)})


@dg.asset(group_name=groups.TUNING, partitions_def=TRIALS, kinds={"scikitlearn", "mlflow"})
def trial_metrics(
    context: dg.AssetExecutionContext, trial_model: Classifier, sweep: SweepRun, mlflow: MlflowRun
) -> dg.Output[dict]:
    """One trial's scores on the sweep's evaluation split."""
    _as_child(mlflow, sweep, context.partition_key)
    result, metadata = evaluate_and_log(trial_model, sweep.splits, mlflow)
    return dg.Output(result, metadata={**metadata, **mlflow.link(context)})


@dataclass(frozen=True)
class Trial:
    key: str
    mlflow_run_id: str
    params: dict[str, Any]
    scores: dict[str, float]


def finished_trials(client: Any, sweep: SweepRun) -> list[Trial]:
    """The sweep's child runs that have their scores."""
    experiment = client.get_experiment_by_name(sweep.experiment_name)
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{sweep.mlflow_run_id}'", max_results=1000
    )
    trials = []
    for child in children:
        key = child.data.tags.get(TRIAL_TAG)
        if key and "accuracy" in child.data.metrics:
            scores = {k: child.data.metrics[k] for k in ("accuracy", "precision", "recall", "f1_score")}
            trials.append(Trial(key, child.info.run_id, trial_params(key), scores))
    return trials


@dg.asset(group_name=groups.TUNING, deps=["trial_metrics"], kinds={"mlflow"}, pool=REGISTRY_POOL)
def best_trial(
    context: dg.AssetExecutionContext, config: RegistryConfig, sweep: SweepRun, mlflow: MlflowRun
) -> dg.MaterializeResult:
    """The sweep's best trial on the shared evaluation data, its summary in the parent run, and its
    model registered to compete for champion under the same rule as every version."""
    import mlflow.sklearn as mlflow_sklearn

    mlflow.use(experiment_name=sweep.experiment_name, mlflow_run_id=sweep.mlflow_run_id)
    rule = config.rule()
    trials = finished_trials(mlflow.client, sweep)
    if not trials:
        raise RuntimeError(f"sweep {sweep.mlflow_run_id} has no finished trial")
    best = max(trials, key=lambda t: (t.scores[rule.metric], t.scores[rule.tie_breaker], t.key))
    plot = metric_by_parameter_png([(t.params, t.scores[rule.metric]) for t in trials], rule.metric)
    summary = {
        "trials": [{"key": t.key, "mlflow_run_id": t.mlflow_run_id, **t.params, **t.scores} for t in trials],
        "best": {"key": best.key, "mlflow_run_id": best.mlflow_run_id, "params": best.params, "scores": best.scores},
        "metric": rule.metric,
    }
    mlflow.log_metrics({"trials": len(trials), **{f"best.{k}": v for k, v in best.scores.items()}})
    mlflow.set_tags(
        {
            "best_trial": best.key,
            "best_trial_run_id": best.mlflow_run_id,
            "best_run_url": mlflow.tracking_config().run_url(mlflow.experiment_id, best.mlflow_run_id),
            "child_run_ids": " ".join(sorted(t.mlflow_run_id for t in trials)),
            **{f"best.{k}": str(v) for k, v in best.params.items()},
        }
    )
    mlflow.log_dict(summary, "sweep_summary.json")
    mlflow.log_bytes(plot, f"{rule.metric}_by_hyperparameter.png")
    client = mlflow.client
    logged = client.search_logged_models(
        experiment_ids=[mlflow.experiment_id], filter_string=f"source_run_id = '{best.mlflow_run_id}'"
    )
    by_name = {m.name: f"models:/{m.model_id}" for m in logged}
    model = mlflow.load_model(mlflow_sklearn, by_name["model"])
    registration = register_and_promote(
        mlflow,
        config.registered_model or settings.current().registered_model,
        rule,
        best.scores,
        model,
        sweep.splits,
        tags={
            "dagster_run_id": context.run.run_id,
            "onnx_model_uri": by_name.get(ONNX_LOGGED_MODEL),
            "sweep_parent_run_id": sweep.mlflow_run_id,
            "trial": best.key,
        },
        source_run_id=best.mlflow_run_id,
        model_uri=by_name["model"],
    )
    return dg.MaterializeResult(
        metadata={
            "trials": len(trials),
            "best_trial": best.key,
            **{f"best_{k}": dg.MetadataValue.float(v) for k, v in best.scores.items()},
            "plot": dg.MetadataValue.md(markdown_image(plot, f"{rule.metric} by hyperparameter")),
            **registration,
            **mlflow.link(context),
        }
    )
