"""A dataset's table, read and refused before any training: what every stage of its pipeline receives.

Each refusal is one line naming the column, the value or row count, and what is
allowed (docs/datasets.md lists them). Rows are numbered from 1, after the header.

Class names come from the label column: text as written (spaces, accents), or, when
every label is an integer, its decimal text. Their order is the definition's
``classes`` if given, else sorted (integers numerically): the order of the confusion
matrix, the report, and the probability columns of every client.
"""

import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from iris_assets import settings
from iris_assets.data.schema import FLOAT32_MAX, MIN_ROWS_PER_CLASS, read_bounded
from iris_assets.datasets.definition import DatasetDefinition

if TYPE_CHECKING:
    import pandas as pd

# More classes than this is taken for a mistake (an id or a measurement chosen as the label).
MAX_CLASSES = 100


class DatasetTableError(ValueError):
    """A table the pipeline refuses; the message names the column, the value or count and what is allowed."""


@dataclass(frozen=True)
class DatasetTable:
    frame: "pd.DataFrame"  # features (float64) + the label column (class names, text)
    source: str
    dataset: str
    features: list[str]
    label: str
    class_names: list[str]


def load_table(definition: DatasetDefinition) -> DatasetTable:
    """The definition's table, validated; DatasetTableError otherwise."""
    if definition.bundled:
        frame, source = _bundled(definition.bundled, definition.label), f"sklearn.datasets.load_{definition.bundled}"
    else:
        source = definition.source
        frame = _read_csv(source, definition.name)
    return validate(frame, definition, source)


def _bundled(name: str, label: str) -> "pd.DataFrame":
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.drop(columns="target")
    frame[label] = [str(bunch.target_names[int(t)]) for t in bunch.target]
    return frame


def _read_csv(path: str, name: str) -> "pd.DataFrame":
    import pandas as pd

    # The same bound as Iris's landing folder: never more than the limit in memory before parsing.
    try:
        data = read_bounded(path, settings.current().max_csv_bytes, what=f"dataset {name}'s CSV")
    except ValueError as error:
        raise DatasetTableError(str(error)) from None
    try:
        return pd.read_csv(io.BytesIO(data), encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetTableError(f"{path}: is not UTF-8 text (byte {error.start} is not valid UTF-8)") from None
    except pd.errors.EmptyDataError:
        raise DatasetTableError(f"{path}: cannot be read as CSV (it is empty)") from None
    except pd.errors.ParserError as error:
        raise DatasetTableError(
            f"{path}: cannot be read as CSV ({str(error).strip().splitlines()[-1][:200]})"
        ) from None


def validate(frame: "pd.DataFrame", definition: DatasetDefinition, source: str) -> DatasetTable:
    import pandas as pd

    where = f"dataset {definition.name} ({source})"
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    label = definition.label
    if label not in columns:
        raise DatasetTableError(f"{where}: has no label column {label!r}; its columns are {_few(columns)}")
    features = list(definition.features) if definition.features else [c for c in columns if c != label]
    absent = [c for c in features if c not in columns]
    if absent:
        raise DatasetTableError(
            f"{where}: feature column(s) {absent} are not in the table; its columns are {_few(columns)}"
        )
    if not features:
        raise DatasetTableError(f"{where}: has no feature column beside the label {label!r}; at least one is needed")
    if frame.empty:
        raise DatasetTableError(f"{where}: has a header but no rows")
    for column in [*features, label]:
        gaps = frame[column].isna()
        if gaps.any():
            raise DatasetTableError(
                f"{where}: column {column!r} has {int(gaps.sum())} missing value(s) (first: row "
                f"{int(gaps.to_numpy().argmax()) + 1}); every feature and label must be present (nothing is imputed: "
                "drop or fill those rows)"
            )
    for column in features:
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        bad = ~(values.abs() <= FLOAT32_MAX)  # also NaN: a cell that is not a number
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raw = frame[column].iloc[row]
            what = "is not a number" if math.isnan(values.iloc[row]) else "is not finite within float32"
            raise DatasetTableError(
                f"{where}: column {column!r} row {row + 1} = {_shown(raw)} {what}; features must be numbers "
                f"({int(bad.sum())} such row(s); encode categories as numbers first)"
            )
        frame[column] = values
    labels, class_names = _class_names(frame[label], definition, where)
    if label in class_names:
        raise DatasetTableError(f"{where}: class {label!r} has the label column's own name; rename one of them")
    counts = labels.value_counts()
    if len(counts) < 2:
        raise DatasetTableError(
            f"{where}: label column {label!r} has a single class {class_names} ({len(labels)} rows); a classifier "
            "needs at least 2"
        )
    if len(counts) > MAX_CLASSES:
        raise DatasetTableError(
            f"{where}: label column {label!r} has {len(counts)} classes; at most {MAX_CLASSES} are allowed "
            "(is it an identifier or a measurement?)"
        )
    few = {name: int(counts.get(name, 0)) for name in class_names if counts.get(name, 0) < MIN_ROWS_PER_CLASS}
    if few:
        name, rows = next(iter(few.items()))
        raise DatasetTableError(
            f"{where}: class {name!r} has {rows} row(s); each class needs at least {MIN_ROWS_PER_CLASS} (a stratified "
            f"split puts each on both sides){'; also ' + str(dict(list(few.items())[1:])) if len(few) > 1 else ''}"
        )
    table = frame[features].copy()
    table[label] = labels.to_numpy()
    return DatasetTable(table, source, definition.name, features, label, class_names)


def _class_names(raw: "pd.Series", definition: DatasetDefinition, where: str) -> "tuple[pd.Series, list[str]]":
    """The labels as class names (text) and the classes' documented order."""
    import pandas as pd

    numbers = pd.to_numeric(raw, errors="coerce")
    integers = bool(numbers.notna().all() and (numbers == numbers.round()).all())
    labels = numbers.astype("int64").astype(str) if integers else raw.astype(str)
    present = set(labels.unique())
    if definition.classes is not None:
        unknown = ~labels.isin(definition.classes)
        if unknown.any():
            row = int(unknown.to_numpy().argmax())
            raise DatasetTableError(
                f"{where}: {int(unknown.sum())} row(s) have a label outside the definition's classes "
                f"{_few(list(definition.classes))} (first: row {row + 1}, {_shown(labels.iloc[row])})"
            )
        unseen = [c for c in definition.classes if c not in present]
        if unseen:
            raise DatasetTableError(f"{where}: the definition's class(es) {unseen} have no rows in the table")
        return labels, list(definition.classes)
    order = sorted(present, key=int) if integers else sorted(present)
    return labels, order


def _few(names: list[str]) -> str:
    return str(names) if len(names) <= 10 else f"{names[:10]}... ({len(names)} in all)"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text):,} characters)"
