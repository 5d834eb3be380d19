"""Data assets: the Iris table (original task "ingestao_dados") and its train/test split ("split")."""

from collections.abc import Iterator
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from iris_assets import groups
from iris_assets.data.checks import RAW_DATA_CHECK_SPECS, raw_data_check_results
from iris_assets.data.schema import (
    FEATURES,
    SPECIES,
    IrisDataError,
    IrisTable,
    Splits,
    load_bundled_iris,
    load_iris_csv,
)
from iris_assets.tracking import MlflowRun


class RawDataConfig(dg.Config):
    csv_path: Optional[str] = Field(
        default=None,
        description="A local CSV with columns sepal_length, sepal_width, petal_length, "
        "petal_width, species. Default: scikit-learn's bundled Iris copy.",
    )
    expected_sha256: Optional[str] = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Refuse csv_path unless its content has this SHA-256 (the new-data sensor sets it: "
        "a run trains on exactly the file the sensor accepted).",
    )


class SplitConfig(dg.Config):
    test_size: float = Field(default=0.2, gt=0, lt=1, description="Share of rows held out for testing.")
    random_state: int = Field(default=42, ge=0, le=2**32 - 1, description="Seed of the shuffle.")


@dg.asset(group_name=groups.PIPELINE, kinds={"python", "pandas"}, check_specs=RAW_DATA_CHECK_SPECS)
def raw_data(context: dg.AssetExecutionContext, config: RawDataConfig, mlflow: MlflowRun) -> Iterator:
    """The Iris table: 150 rows, four measurements (cm), integer target and species name; its checks run here."""
    table = load_iris_csv(config.csv_path, config.expected_sha256) if config.csv_path else load_bundled_iris()
    counts = table.frame["species"].value_counts().reindex(SPECIES, fill_value=0)
    digest = mlflow.log_dataset(table.frame, name="iris_raw", context="raw", source=table.source, targets="target")
    yield dg.Output(
        table,
        metadata={
            "source": table.source,
            "dataset_digest": digest,
            "dagster/row_count": len(table.frame),
            "class_balance": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
            **mlflow.link(context),
        },
    )
    yield from raw_data_check_results(table, mlflow)


@dg.asset(group_name=groups.PIPELINE, kinds={"scikitlearn"})
def splits(
    context: dg.AssetExecutionContext, config: SplitConfig, raw_data: IrisTable, mlflow: MlflowRun
) -> dg.Output[Splits]:
    """Stratified train/test split, so both sides keep the class balance of the table.

    The labels are the species names: models learn, predict and are served with names.
    """
    splits, metadata = split_and_log(
        raw_data.frame, FEATURES, "species", raw_data.class_names, config, raw_data.source, "iris", mlflow
    )
    return dg.Output(splits, metadata={**metadata, **mlflow.link(context)})


def split_and_log(
    frame: Any,
    features: list[str],
    label: str,
    class_names: list[str],
    config: SplitConfig,
    source: str,
    dataset: str,
    mlflow: MlflowRun,
) -> tuple[Splits, dict]:
    """The stratified split of a table (Iris's or any dataset's), its params and both sides logged as MLflow
    datasets ``<dataset>_train`` / ``<dataset>_test``; the splits and their materialisation metadata."""
    from mlflow import log_params
    from sklearn.model_selection import train_test_split

    _check_split_sizes(len(frame), frame[label].nunique(), config.test_size)
    X_train, X_test, y_train, y_test = train_test_split(
        frame[features],
        frame[label],
        test_size=config.test_size,
        random_state=config.random_state,
        stratify=frame[label],
    )
    # MLflow's own fluent call, as the seed's tasks wrote it: inside a step it logs into the bound run
    # (tracking/fluent.py), on every executor; the other calls here name their run through the resource.
    log_params({"test_size": config.test_size, "split_random_state": config.random_state, "stratified": True})
    digests = {
        context: mlflow.log_dataset(
            X.assign(**{label: y}), name=f"{dataset}_{part}", context=context, source=source, targets=label
        )
        for part, context, X, y in (
            ("train", "training", X_train, y_train),
            ("test", "evaluation", X_test, y_test),
        )
    }
    splits = Splits(
        X_train,
        X_test,
        y_train,
        y_test,
        list(class_names),
        evaluation_digest=digests["evaluation"],
        label=label,
        dataset=dataset,
    )
    metadata = {
        "train_rows": len(X_train),
        "test_rows": len(X_test),
        "train_digest": digests["training"],
        "test_digest": digests["evaluation"],
    }
    return splits, metadata


def _check_split_sizes(rows: int, species: int, test_size: float) -> None:
    """Refuse, in our words, a split scikit-learn would refuse: each side needs a row of every species."""
    import math

    test_rows = math.ceil(test_size * rows)
    train_rows = rows - test_rows
    if test_rows < species or train_rows < species:
        raise IrisDataError(
            f"splits: test_size={test_size} splits {rows} rows into {train_rows} for training and {test_rows} for "
            f"testing; a stratified split needs at least {species} (one per class) on each side"
        )
