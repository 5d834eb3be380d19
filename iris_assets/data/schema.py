"""The Iris table's shape and its validation: what every stage agrees a table and a split are.

The table has the four measurements in centimetres, the class as an integer
``target`` (0, 1, 2) and as a ``species`` name. It comes from scikit-learn's
bundled copy (no network), or from a local CSV with the columns
``sepal_length, sepal_width, petal_length, petal_width, species``.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from iris_assets import settings

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]
CSV_COLUMNS = [*FEATURES, "species"]


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
    frame = bunch.frame.rename(columns=dict(zip(bunch.feature_names, FEATURES, strict=True)))
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
    # Iris tables are small (the classic one is 5 KB); a file far larger is a mistake,
    # and reading it whole would take the step's memory with it.
    limit = settings.current().max_csv_bytes
    if file.is_file() and file.stat().st_size > limit:
        raise IrisDataError(
            f"{path}: is {file.stat().st_size:,} bytes; an Iris CSV may hold at most {limit:,} bytes ($IRIS_MAX_CSV_BYTES)"
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
        raise IrisDataError(f"{name}: columns must be exactly {CSV_COLUMNS}; missing {missing}, unexpected {extra}")
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
