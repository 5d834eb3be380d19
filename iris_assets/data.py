"""Data: the Iris table (original task "ingestao_dados") and its train/test split ("split").

The table has the four measurements in centimetres, the class as an integer
``target`` (0, 1, 2) and as a ``species`` name. It comes from scikit-learn's
bundled copy (no network), or from a local CSV with the columns
``sepal_length, sepal_width, petal_length, petal_width, species``.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import dagster as dg
from pydantic import Field

from iris_assets.mlflow_run import MlflowRun

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]
CSV_COLUMNS = [*FEATURES, "species"]
# Iris tables are small (the classic one is 5 KB); a file far larger is a mistake,
# and reading it whole would take the step's memory with it.
MAX_CSV_BYTES_ENV_VAR = "IRIS_MAX_CSV_BYTES"
MAX_CSV_BYTES = int(os.environ.get(MAX_CSV_BYTES_ENV_VAR, 64 * 1024 * 1024))


class IrisDataError(ValueError):
    """A data file that does not hold Iris measurements; the message says what is wrong."""


@dataclass(frozen=True)
class IrisTable:
    frame: "pd.DataFrame"  # FEATURES + "target" (int) + "species" (name)
    source: str

    @property
    def class_names(self) -> list[str]:
        return list(SPECIES)


@dataclass(frozen=True)
class Splits:
    X_train: "pd.DataFrame"
    X_test: "pd.DataFrame"
    y_train: "pd.Series"
    y_test: "pd.Series"
    class_names: list[str]


def load_bundled_iris() -> IrisTable:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=dict(zip(bunch.feature_names, FEATURES)))
    frame["target"] = frame["target"].astype("int64")
    frame["species"] = frame["target"].map(dict(enumerate(bunch.target_names)))
    return IrisTable(frame=frame, source="sklearn.datasets.load_iris")


def load_iris_csv(path: str) -> IrisTable:
    """Read and validate a CSV of Iris measurements; raise IrisDataError naming the problem."""
    import pandas as pd

    file = Path(path)
    if file.is_symlink() and not file.exists():
        raise IrisDataError(f"{path}: is a dangling symbolic link (to {os.readlink(file)})")
    if file.exists() and not file.is_file():
        raise IrisDataError(f"{path}: is not a regular file (a directory?); give the path of a CSV file")
    if file.is_file() and file.stat().st_size > MAX_CSV_BYTES:
        raise IrisDataError(
            f"{path}: is {file.stat().st_size:,} bytes; an Iris CSV may hold at most "
            f"{MAX_CSV_BYTES:,} bytes (${MAX_CSV_BYTES_ENV_VAR})"
        )
    try:
        frame = pd.read_csv(path, encoding="utf-8")
    except UnicodeDecodeError as error:
        raise IrisDataError(f"{path}: is not UTF-8 text ({error})") from error
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise IrisDataError(f"{path}: cannot be read as CSV ({error})") from error
    return IrisTable(frame=validate_iris_frame(frame, path), source=path)


def validate_iris_frame(frame: "pd.DataFrame", name: str) -> "pd.DataFrame":
    import pandas as pd

    columns = list(frame.columns)
    missing = [c for c in CSV_COLUMNS if c not in columns]
    extra = [c for c in columns if c not in CSV_COLUMNS]
    if missing or extra:
        raise IrisDataError(
            f"{name}: columns must be exactly {CSV_COLUMNS}; missing {missing}, unexpected {extra}"
        )
    if frame.empty:
        raise IrisDataError(f"{name}: has a header but no rows")
    for column in FEATURES:
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        # A length in cm: a number, finite ("inf" parses as a float), not negative.
        bad = frame[column][~((values >= 0) & (values < float("inf")))]
        if not bad.empty:
            raise IrisDataError(
                f"{name}: column {column!r} must hold numbers (finite, >= 0, in cm); row "
                f"{bad.index[0] + 1} has {bad.iloc[0]!r}"
            )
        frame[column] = values
    unknown = sorted(set(frame["species"].astype(str)) - set(SPECIES))
    if frame["species"].isna().any() or unknown:
        raise IrisDataError(f"{name}: unknown species {unknown or ['<missing>']}; allowed {SPECIES}")
    if frame["species"].nunique() < 2:
        raise IrisDataError(f"{name}: needs at least two species, has {frame['species'].unique().tolist()}")
    frame["target"] = frame["species"].map({s: i for i, s in enumerate(SPECIES)}).astype("int64")
    return frame[[*FEATURES, "target", "species"]]


class RawDataConfig(dg.Config):
    csv_path: Optional[str] = Field(
        default=None,
        description="A local CSV with columns sepal_length, sepal_width, petal_length, "
        "petal_width, species. Default: scikit-learn's bundled Iris copy.",
    )


class SplitConfig(dg.Config):
    test_size: float = Field(default=0.2, gt=0, lt=1, description="Share of rows held out for testing.")
    random_state: int = Field(default=42, ge=0, le=2**32 - 1, description="Seed of the shuffle.")


@dg.asset(group_name="iris", kinds={"python", "pandas"})
def raw_data(context: dg.AssetExecutionContext, config: RawDataConfig, mlflow: MlflowRun) -> dg.Output[IrisTable]:
    """The Iris table: 150 rows, four measurements (cm), integer target and species name."""
    table = load_iris_csv(config.csv_path) if config.csv_path else load_bundled_iris()
    counts = table.frame["species"].value_counts().reindex(SPECIES, fill_value=0)
    digest = mlflow.log_dataset(
        table.frame, name="iris_raw", context="raw", source=table.source, targets="target"
    )
    return dg.Output(
        table,
        metadata={
            "source": table.source,
            "dataset_digest": digest,
            "dagster/row_count": len(table.frame),
            "class_balance": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
            **mlflow.link(context),
        },
    )


@dg.asset(group_name="iris", kinds={"scikitlearn"})
def splits(
    context: dg.AssetExecutionContext, config: SplitConfig, raw_data: IrisTable, mlflow: MlflowRun
) -> dg.Output[Splits]:
    """Stratified train/test split, so both sides keep the class balance of the table."""
    from sklearn.model_selection import train_test_split

    frame = raw_data.frame
    X_train, X_test, y_train, y_test = train_test_split(
        frame[FEATURES],
        frame["target"],
        test_size=config.test_size,
        random_state=config.random_state,
        stratify=frame["target"],
    )
    mlflow.log_params(
        {"test_size": config.test_size, "split_random_state": config.random_state, "stratified": True}
    )
    digests = {
        context: mlflow.log_dataset(
            X.assign(target=y), name=f"iris_{part}", context=context, source=raw_data.source, targets="target"
        )
        for part, context, X, y in (
            ("train", "training", X_train, y_train),
            ("test", "evaluation", X_test, y_test),
        )
    }
    return dg.Output(
        Splits(X_train, X_test, y_train, y_test, raw_data.class_names),
        metadata={
            "train_rows": len(X_train),
            "test_rows": len(X_test),
            "train_digest": digests["training"],
            "test_digest": digests["evaluation"],
            **mlflow.link(context),
        },
    )
