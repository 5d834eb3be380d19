"""A dataset's pipeline: Iris's six stages, their checks and its one MLflow run per Dagster run, for any definition.

The assets are ``<name>/raw_data`` ... ``<name>/registered_model`` in the group ``<name>``,
with the job ``<name>_pipeline``; each stage calls the same functions as Iris's
(split, fit, gate, evaluation, ONNX with parity, registry and the fair champion rule),
so a dataset gets exactly what Iris gets. Run config addresses a stage by its op name,
``<name>__model`` (Dagster's name for a prefixed asset's op).

Each dataset is its own code location (``locations.py``), or an asset group of the one
location holding every pipeline (``pipelines.all_pipelines_definitions``), where a run over
several is split into one run per pipeline: one Dagster run, hence one MLflow run, never
holds two datasets.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg

from iris_assets.data.assets import SplitConfig, split_and_log
from iris_assets.data.checks import raw_data_check_specs, table_check_results
from iris_assets.data.schema import Splits
from iris_assets.datasets.definition import DatasetDefinition
from iris_assets.datasets.table import DatasetTable, load_table
from iris_assets.evaluation.assets import evaluate_and_log
from iris_assets.packaging.assets import OnnxConfig, onnx_model_events
from iris_assets.packaging.checks import parity_spec
from iris_assets.registry.assets import REGISTRY_POOL, RegistryConfig, registered_model_result
from iris_assets.tracking import MlflowRun
from iris_assets.training.assets import ModelConfig, fit_and_log
from iris_assets.training.checks import quality_gate_result, quality_gate_spec, resolved_min_accuracy
from iris_assets.training.model import Classifier

STAGES = ("raw_data", "splits", "model", "metrics", "onnx_model", "registered_model")


def stage_key(definition: DatasetDefinition, stage: str) -> dg.AssetKey:
    return dg.AssetKey([definition.name, stage])


def op_name(definition: DatasetDefinition, stage: str) -> str:
    """What run config calls a stage: ``ops: {wine__model: {config: {...}}}``."""
    return f"{definition.name}__{stage}"


def dataset_assets(definition: DatasetDefinition) -> list[dg.AssetsDefinition]:
    name = definition.name
    key = {stage: stage_key(definition, stage) for stage in STAGES}

    @dg.asset(
        key=key["raw_data"],
        kinds={"python", "pandas"},
        check_specs=raw_data_check_specs(key["raw_data"], value_ranges=False),
        description=f"The {name} table ({definition.source}), refused before training if it is not a usable table.",
        group_name=name,
    )
    def raw_data(context: dg.AssetExecutionContext, mlflow: MlflowRun) -> Iterator:
        # Read and refused before the first MLflow call: a bad table starts no MLflow run.
        table = load_table(definition)
        frame = table.frame
        counts = frame[table.label].value_counts().reindex(table.class_names, fill_value=0)
        digest = mlflow.log_dataset(frame, name=f"{name}_raw", context="raw", source=table.source, targets=table.label)
        yield dg.Output(
            table,
            metadata={
                "source": table.source,
                "dataset_digest": digest,
                "dagster/row_count": len(frame),
                "features": len(table.features),
                "class_balance": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
                **mlflow.link(context),
            },
        )
        yield from table_check_results(
            frame,
            table.features,
            table.label,
            table.class_names,
            [*table.features, table.label],
            mlflow,
            asset_key=key["raw_data"],
        )

    @dg.asset(key=key["splits"], ins={"raw_data": dg.AssetIn(key["raw_data"])}, kinds={"scikitlearn"}, group_name=name)
    def splits(
        context: dg.AssetExecutionContext, config: SplitConfig, raw_data: DatasetTable, mlflow: MlflowRun
    ) -> dg.Output[Splits]:
        """Stratified train/test split; the labels are the class names."""
        result, metadata = split_and_log(
            raw_data.frame,
            raw_data.features,
            raw_data.label,
            raw_data.class_names,
            config,
            raw_data.source,
            name,
            mlflow,
        )
        return dg.Output(result, metadata={**metadata, **mlflow.link(context)})

    @dg.asset(
        key=key["model"],
        ins={"splits": dg.AssetIn(key["splits"])},
        kinds={"scikitlearn", "mlflow"},
        check_specs=[quality_gate_spec(key["model"])],
        group_name=name,
    )
    def model(context: dg.AssetExecutionContext, config: ModelConfig, splits: Splits, mlflow: MlflowRun) -> Iterator:
        """A model of the configured family fitted on the training split; its quality gate blocks the rest."""
        fitted, metadata = fit_and_log(config, splits, mlflow)
        yield dg.Output(fitted, metadata={**metadata, **mlflow.link(context)})
        yield quality_gate_result(fitted, splits, resolved_min_accuracy(config.min_accuracy), mlflow)

    @dg.asset(
        key=key["metrics"],
        ins={"model": dg.AssetIn(key["model"]), "splits": dg.AssetIn(key["splits"])},
        kinds={"scikitlearn", "mlflow"},
        group_name=name,
    )
    def metrics(
        context: dg.AssetExecutionContext, model: Classifier, splits: Splits, mlflow: MlflowRun
    ) -> dg.Output[dict]:
        """Accuracy, and macro-averaged precision, recall and F1 on the test split."""
        result, metadata = evaluate_and_log(model, splits, mlflow)
        return dg.Output(result, metadata={**metadata, **mlflow.link(context)})

    @dg.asset(
        key=key["onnx_model"],
        ins={"model": dg.AssetIn(key["model"]), "splits": dg.AssetIn(key["splits"])},
        kinds={"onnx", "mlflow"},
        check_specs=[parity_spec(key["onnx_model"])],
        group_name=name,
    )
    def onnx_model(
        context: dg.AssetExecutionContext, config: OnnxConfig, model: Classifier, splits: Splits, mlflow: MlflowRun
    ) -> Iterator:
        """The model as ONNX (its dataset, features and label in the file), checked for parity on the test split."""
        yield from onnx_model_events(context, config, model, splits, mlflow)

    @dg.asset(
        key=key["registered_model"],
        ins={
            "metrics": dg.AssetIn(key["metrics"]),
            "model": dg.AssetIn(key["model"]),
            "splits": dg.AssetIn(key["splits"]),
        },
        deps=[key["onnx_model"]],
        kinds={"mlflow"},
        pool=REGISTRY_POOL,
        description=f"A new version of {definition.registered_model!r} (unless configured otherwise); champion if "
        "it beats the current one on the same rows.",
        group_name=name,
    )
    def registered_model(
        context: dg.AssetExecutionContext,
        config: RegistryConfig,
        metrics: dict,
        model: Classifier,
        splits: Splits,
        mlflow: MlflowRun,
    ) -> dg.MaterializeResult:
        return registered_model_result(context, config, definition.registered_model, metrics, model, splits, mlflow)

    return [raw_data, splits, model, metrics, onnx_model, registered_model]


@dataclass(frozen=True)
class DatasetParts:
    """What a dataset adds to a code location: its assets, its pipeline and sweep jobs, its trial launcher."""

    assets: list[dg.AssetsDefinition]
    jobs: list["dg.JobDefinition | dg.UnresolvedAssetJobDefinition"]
    trial_launcher: dg.SensorDefinition


def dataset_parts(definition: DatasetDefinition) -> DatasetParts:
    from iris_assets.tuning.jobs import sweep_jobs
    from iris_assets.tuning.sensors import trial_launcher
    from iris_assets.tuning.target import dataset_target

    target = dataset_target(definition)
    job = dg.define_asset_job(
        definition.job_name,
        selection=dg.AssetSelection.groups(definition.name),
        description=f"The whole {definition.name} pipeline, one MLflow run in {definition.experiment!r}.",
        config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    return DatasetParts(dataset_assets(definition), [job, *sweep_jobs(target)], trial_launcher(target))


def dataset_definitions(definition: DatasetDefinition) -> dg.Definitions:
    """The code location of one dataset: its assets, its jobs, its MLflow experiment."""
    from iris_assets import config_errors
    from iris_assets.console import compact_console
    from iris_assets.execution.executor import iris_executor
    from iris_assets.io_manager import RunScopedStorage
    from iris_assets.project_mlflow import DatasetMlflowRun
    from iris_assets.runs.sensors import close_dead_runs, close_orphaned_mlflow_runs
    from iris_assets.tracking import credentials_from_environment
    from iris_assets.tracking.sensors import close_mlflow_run_on_cancel, close_mlflow_run_on_failure

    parts = dataset_parts(definition)
    definitions = dg.Definitions(
        assets=parts.assets,
        jobs=parts.jobs,
        sensors=[
            close_mlflow_run_on_failure,
            close_mlflow_run_on_cancel,
            close_orphaned_mlflow_runs,
            close_dead_runs,
            parts.trial_launcher,
        ],
        resources={
            "mlflow": DatasetMlflowRun(
                experiment_name=definition.experiment,
                pipeline_job=definition.job_name,
                **credentials_from_environment(),
            ),
            "io_manager": RunScopedStorage(),
        },
        executor=iris_executor,
        loggers={"console": compact_console},
    )
    return config_errors.remember_definitions(definition.job_name, definitions)
