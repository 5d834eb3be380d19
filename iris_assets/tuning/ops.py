"""A sweep's work: open it, train each trial, wait for the trials, pick and register the best.

A sweep is one run of the job ``iris_sweep`` (its MLflow run is the sweep's parent run,
in the tuning experiment ``$IRIS_TUNING_EXPERIMENT``), and one run of ``iris_trial`` per
trial, a partition keyed by the trial's hyperparameters (each its MLflow child run). A
dataset's sweeps are the same ops built for its target (``sweep_ops``, ``tuning/target.py``):
``wine_sweep``, ``wine_trial``, ``wine-hyperparameter-tuning``, ``wine/splits``.

* ``open_sweep`` validates the sweep (the same rules as a sweep file), refuses in one
  line when the pipeline never ran (no ``splits`` to train on), declares the trials as
  partitions and pins the ``splits`` of that moment: every trial trains and is scored on
  those rows, whatever runs meanwhile. The sensor ``launch_sweep_trials`` then starts
  one ``iris_trial`` run per trial, through the run queue (in parallel);
* ``trial`` (in each trial's run) trains, packages and evaluates with the pipeline's own
  code, as a child of the sweep's parent run;
* ``wait_for_trials`` follows the trials (a line per finished trial: its score and the
  best so far) until every one is over; a failed trial fails the sweep, naming it;
* ``best_trial`` picks the best trial on the shared evaluation rows, writes the summary
  into the parent run, registers the best trial's model, which competes for champion
  under the same rule as every version; the parent ends FINISHED with the run.

Why jobs of ops rather than assets: a trial is an experiment recorded in MLflow, not a
data asset the pipeline depends on; as ops, sweeps stay out of the asset graph, so
"Materialize all" on the global lineage means the pipeline, and a sweep never waits for
an asset backfill's daemon loop between its stages.
"""

import time
from dataclasses import dataclass
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from iris_assets import dagster_private, settings
from iris_assets.data.schema import Splits
from iris_assets.evaluation.assets import evaluate_and_log
from iris_assets.io_manager import stored_value
from iris_assets.packaging.assets import package_and_log
from iris_assets.packaging.onnx import DEFAULT_PARITY_ATOL, ONNX_LOGGED_MODEL
from iris_assets.plots import markdown_image, metric_by_parameter_png
from iris_assets.registry.assets import REGISTRY_POOL, RegistryConfig, register_and_promote
from iris_assets.tracking import MlflowRun
from iris_assets.tracking.election import announced_mlflow_runs
from iris_assets.tracking.store import mlflow_client
from iris_assets.training.assets import ModelConfig, fit_and_log
from iris_assets.training.families import DEFAULT_FAMILY, FAMILY
from iris_assets.tuning.space import Sweep, SweepError, parse, trial_params
from iris_assets.tuning.target import IRIS_TARGET, SweepTarget

SWEEP_TAG = "iris/sweep"  # on a trial's Dagster run: the id of its sweep's (first) run
SWEEP_PARENT_TAG = "iris/sweep_parent"  # on a parent MLflow run: "true"
SPLITS_RUN_TAG = "splits_run_id"  # on a parent MLflow run: the Dagster run whose splits every trial uses
TRIAL_TAG = "iris/trial"  # on a child MLflow run: its trial key
FAILED_TRIALS_TAG = "failed_trials"
NO_SPLITS = IRIS_TARGET.no_splits


class SweepSpec(dg.Config):
    """A sweep, as a sweep file says it (see tuning/space.py): `grid` or `random`."""

    name: str = Field(description="The sweep's name (its parent MLflow run is named after it).")
    grid: Optional[dict[str, Any]] = Field(
        default=None,
        description="Every combination of these values is a trial (a random forest's; or `families`: each "
        "family's own grid).",
    )
    random: Optional[dict[str, Any]] = Field(
        default=None,
        description="`samples` draws (seed `seed`) from {low, high} ranges or {choice: [...]} (or per family, "
        "under `families`).",
    )
    experiment: Optional[str] = Field(
        default=None,
        description="MLflow experiment. Default: the dataset's tuning experiment (Iris's: $IRIS_TUNING_EXPERIMENT, "
        f"else {settings.DEFAULT_TUNING_EXPERIMENT!r}).",
    )
    executor: Optional[str] = Field(
        default=None, description="The trials' executor (in_process, multiprocess or celery); default: the project's."
    )
    timeout_seconds: int = Field(default=3600, ge=1, description="How long to wait for the trials to finish.")

    def sweep(self) -> Sweep:
        spec = {
            key: value for key, value in (("name", self.name), ("grid", self.grid), ("random", self.random)) if value
        }
        return parse(spec, "run config of the sweep")


@dataclass(frozen=True)
class SweepRun:
    """The sweep as its stages find it: its parent MLflow run, its trials, the data they share."""

    name: str
    mlflow_run_id: str
    experiment_name: str
    keys: list[str]
    splits_run_id: str
    splits: Splits
    timeout_seconds: int


def _as_parent(mlflow: MlflowRun, experiment: str, name: str) -> None:
    """Every stage of a sweep's run binds it to the sweep's parent MLflow run (the same values each time)."""
    mlflow.use(experiment_name=experiment, tags={SWEEP_PARENT_TAG: "true", "mlflow.runName": f"sweep-{name}"})


@dataclass(frozen=True)
class Trial:
    key: str
    mlflow_run_id: str
    params: dict[str, Any]  # as its key says them (a forest's without its family)
    scores: dict[str, float]

    @property
    def family_and_params(self) -> dict[str, Any]:
        """Its model family, the default forest's too, and its hyperparameters: what the summary shows."""
        return {FAMILY: self.params.get(FAMILY, DEFAULT_FAMILY), **self.params}


def finished_trials(client: Any, sweep: SweepRun) -> list[Trial]:
    """The sweep's child runs that have their scores."""
    experiment = client.get_experiment_by_name(sweep.experiment_name)
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{sweep.mlflow_run_id}'", max_results=1000
    )
    trials = []
    for child in children:
        key = child.data.tags.get(TRIAL_TAG)
        if key in sweep.keys and "accuracy" in child.data.metrics:
            scores = {k: child.data.metrics[k] for k in ("accuracy", "precision", "recall", "f1_score")}
            trials.append(Trial(key, child.info.run_id, trial_params(key), scores))
    return trials


def trial_runs(instance: dg.DagsterInstance, sweep_run_id: str) -> dict[str, list[dg.DagsterRun]]:
    """Trial key -> its Dagster runs (re-executions included: they keep the sweep's tag), newest first."""
    by_key: dict[str, list[dg.DagsterRun]] = {}
    for run in instance.get_runs(filters=dg.RunsFilter(tags={SWEEP_TAG: sweep_run_id})):
        key = run.tags.get(dagster_private.PARTITION_NAME_TAG)
        if key is not None:
            by_key.setdefault(key, []).append(run)
    return by_key


def trial_outcome(runs: list[dg.DagsterRun]) -> Optional[bool]:
    """True once a run of the trial succeeded, False when every run of it is over and none did, else None."""
    if any(run.status == dg.DagsterRunStatus.SUCCESS for run in runs):
        return True
    if runs and all(run.is_finished for run in runs):
        return False
    return None


POLL_SECONDS = 0.5


def _rank(trial: Trial, rule: Any) -> tuple:
    return (trial.scores[rule.metric], trial.scores[rule.tie_breaker], trial.key)


@dataclass(frozen=True)
class SweepOps:
    open_sweep: dg.OpDefinition
    trial: dg.OpDefinition
    wait_for_trials: dg.OpDefinition
    best_trial: dg.OpDefinition
    trials: dg.DynamicPartitionsDefinition  # a trial run's partition: its hyperparameters


def sweep_ops(target: SweepTarget) -> SweepOps:
    """The ops of ``target``'s sweeps (Iris's, a dataset's): the same work, on its splits, experiment and model."""

    @dg.op(name=target.op("open_sweep"), tags={"kind": "mlflow"})
    def open_sweep(context: dg.OpExecutionContext, config: SweepSpec, mlflow: MlflowRun) -> dg.Output[SweepRun]:
        """Validate the sweep, declare its trials, open its parent MLflow run and pin the split its trials share."""
        try:
            sweep = config.sweep()
        except SweepError as error:
            raise dg.Failure(description=str(error), allow_retries=False) from None
        latest = context.instance.get_latest_materialization_event(target.splits)
        if latest is None:
            raise dg.Failure(description=target.no_splits, allow_retries=False)
        splits: Splits = stored_value(context.instance, target.splits, latest.run_id)
        experiment = config.experiment or target.tuning_experiment()
        _as_parent(mlflow, experiment, sweep.name)
        context.instance.add_dynamic_partitions(target.trials_partitions, sweep.keys)
        mlflow.set_tags(
            {
                SPLITS_RUN_TAG: latest.run_id,
                "evaluation_digest": splits.evaluation_digest,
                "trials": str(len(sweep.keys)),
            }
        )
        return dg.Output(
            SweepRun(sweep.name, mlflow.run_id, experiment, sweep.keys, latest.run_id, splits, config.timeout_seconds),
            metadata={
                "trials": len(sweep.keys),
                "training_rows": len(splits.X_train),
                "evaluation_rows": len(splits.X_test),
                "evaluation_digest": splits.evaluation_digest,
                "splits_run_id": latest.run_id,
                **mlflow.link_run(),
            },
        )

    @dg.op(name=target.op("trial"), tags={"kind": "scikitlearn"})
    def trial(context: dg.OpExecutionContext, mlflow: MlflowRun) -> dg.Output[dict]:
        """One trial (its hyperparameters are its partition key): trained, packaged to ONNX and scored on
        the sweep's split, as a child run of the sweep's parent."""
        key = context.partition_key
        sweep_run_id = context.run.tags.get(SWEEP_TAG)
        if not sweep_run_id:
            raise dg.Failure(description=f"run {context.run_id} has no {SWEEP_TAG} tag: trials are started by a sweep")
        announced = announced_mlflow_runs(context.instance, sweep_run_id)
        if not announced:
            raise dg.Failure(description=f"sweep {sweep_run_id} has no parent MLflow run")
        parent_id = announced[0]
        # Read before `use`: the trial's own MLflow run is bound by the first call that logs.
        client = mlflow_client(mlflow.tracking_config().tracking_uri)
        parent = client.get_run(parent_id)
        experiment = client.get_experiment(parent.info.experiment_id).name
        splits: Splits = stored_value(context.instance, target.splits, parent.data.tags[SPLITS_RUN_TAG])
        # Named by its hyperparameters, so the parent's list of children reads as the grid.
        mlflow.use(experiment_name=experiment, parent_run_id=parent_id, tags={TRIAL_TAG: key, "mlflow.runName": key})
        model, metadata = fit_and_log(ModelConfig(**trial_params(key)), splits, mlflow)
        package_and_log(model, splits, DEFAULT_PARITY_ATOL, mlflow)
        scores, _ = evaluate_and_log(model, splits, mlflow)
        context.log.info(f"trial {key}: " + ", ".join(f"{name} {value:.3f}" for name, value in scores.items()))
        return dg.Output(scores, metadata={**metadata, **mlflow.link_run()})

    @dg.op(name=target.op("wait_for_trials"), tags={"kind": "mlflow"})
    def wait_for_trials(context: dg.OpExecutionContext, sweep: SweepRun, mlflow: MlflowRun) -> dg.Output[list[str]]:
        """Every trial of the sweep over: a line per trial as it finishes; a failed trial fails the sweep."""
        _as_parent(mlflow, sweep.experiment_name, sweep.name)
        rule = RegistryConfig().rule()
        sweep_run_id = context.run.root_run_id or context.run_id
        deadline = time.monotonic() + sweep.timeout_seconds
        reported: set[str] = set()
        best: Optional[Trial] = None
        while True:
            outcomes = {key: trial_outcome(runs) for key, runs in trial_runs(context.instance, sweep_run_id).items()}
            outcomes = {key: outcomes.get(key) for key in sweep.keys}
            newly = sorted(key for key, ok in outcomes.items() if ok is not None and key not in reported)
            if newly:
                scored = {t.key: t for t in finished_trials(mlflow.client, sweep)}
                for key in newly:
                    reported.add(key)
                    done = scored.get(key)
                    if done is not None and (best is None or _rank(done, rule) > _rank(best, rule)):
                        best = done
                    score = f"{rule.metric} {done.scores[rule.metric]:.3f}" if done else "FAILED"
                    leader = f"{best.key} {best.scores[rule.metric]:.3f}" if best else "none"
                    context.log.info(f"trial {len(reported)}/{len(sweep.keys)} {key}: {score} (best so far: {leader})")
            if all(ok is not None for ok in outcomes.values()):
                break
            if time.monotonic() > deadline:
                waiting = sorted(key for key, ok in outcomes.items() if ok is None)
                raise dg.Failure(
                    description=f"{len(waiting)} trial(s) not over after {sweep.timeout_seconds} s: {waiting}"
                )
            time.sleep(POLL_SECONDS)
        failed = sorted(key for key, ok in outcomes.items() if not ok)
        if failed:
            mlflow.set_tags({FAILED_TRIALS_TAG: " ".join(failed)})
            raise dg.Failure(
                description=f"{len(failed)} trial(s) failed: {', '.join(failed)}. Re-execute them from failure, "
                f"then this run from failure: the sweep continues with the same parent MLflow run.",
                allow_retries=False,
            )
        return dg.Output(sweep.keys, metadata={"trials": len(sweep.keys)})

    @dg.op(name=target.op("best_trial"), tags={"kind": "mlflow"}, pool=REGISTRY_POOL)
    def best_trial(
        context: dg.OpExecutionContext,
        config: RegistryConfig,
        sweep: SweepRun,
        trials_over: list[str],
        mlflow: MlflowRun,
    ) -> dg.Output[str]:
        """The best trial on the shared evaluation data, the summary in the parent run, and its model
        registered to compete for champion under the same rule as every version."""
        import mlflow.sklearn as mlflow_sklearn

        _as_parent(mlflow, sweep.experiment_name, sweep.name)
        rule = config.rule()
        trials = finished_trials(mlflow.client, sweep)
        if not trials:
            raise dg.Failure(description=f"sweep {sweep.mlflow_run_id} has no finished trial")
        best = max(trials, key=lambda t: _rank(t, rule))
        plot = metric_by_parameter_png([(t.family_and_params, t.scores[rule.metric]) for t in trials], rule.metric)
        summary = {
            "trials": [
                {"key": t.key, "mlflow_run_id": t.mlflow_run_id, **t.family_and_params, **t.scores} for t in trials
            ],
            "best": {
                "key": best.key,
                "mlflow_run_id": best.mlflow_run_id,
                "params": best.family_and_params,
                "scores": best.scores,
            },
            "metric": rule.metric,
        }
        mlflow.log_metrics({"trials": len(trials), **{f"best.{k}": v for k, v in best.scores.items()}})
        mlflow.set_tags(
            {
                "best_trial": best.key,
                "best_trial_run_id": best.mlflow_run_id,
                "best_run_url": mlflow.tracking_config().run_url(mlflow.experiment_id, best.mlflow_run_id),
                "child_run_ids": " ".join(sorted(t.mlflow_run_id for t in trials)),
                **{f"best.{k}": str(v) for k, v in best.family_and_params.items()},
            }
        )
        mlflow.log_dict(summary, "sweep_summary.json")
        mlflow.log_bytes(plot, f"{rule.metric}_by_hyperparameter.png")
        logged = mlflow.client.search_logged_models(
            experiment_ids=[mlflow.experiment_id], filter_string=f"source_run_id = '{best.mlflow_run_id}'"
        )
        by_name = {m.name: f"models:/{m.model_id}" for m in logged}
        model = mlflow.load_model(mlflow_sklearn, by_name["model"])
        registration = register_and_promote(
            mlflow,
            config.registered_model or target.registered_model(),
            rule,
            best.scores,
            model,
            sweep.splits,
            tags={
                "dagster_run_id": context.run_id,
                "onnx_model_uri": by_name.get(ONNX_LOGGED_MODEL),
                "sweep_parent_run_id": sweep.mlflow_run_id,
                "trial": best.key,
            },
            source_run_id=best.mlflow_run_id,
            model_uri=by_name["model"],
        )
        decision = "champion" if registration["promoted"] else "not promoted"
        context.log.info(
            f"best trial {best.key}: {rule.metric} {best.scores[rule.metric]:.3f}; registered "
            f"{registration['registered_model']}/{registration['version']}: {decision} ({registration['decision']})"
        )
        return dg.Output(
            best.key,
            metadata={
                "trials": len(trials),
                "best_trial": best.key,
                **{f"best_{k}": dg.MetadataValue.float(v) for k, v in best.scores.items()},
                "plot": dg.MetadataValue.md(markdown_image(plot, f"{rule.metric} by hyperparameter")),
                **registration,
                **mlflow.link_run(),
            },
        )

    return SweepOps(
        open_sweep, trial, wait_for_trials, best_trial, dg.DynamicPartitionsDefinition(name=target.trials_partitions)
    )
