"""The Iris table's shape and its validation: what every stage agrees a table and a split are.

The table has the four measurements in centimetres, the class as an integer
``target`` (0, 1, 2) and as a ``species`` name. It comes from scikit-learn's
bundled copy (no network), or from a local CSV with the columns
``sepal_length, sepal_width, petal_length, petal_width, species``.
"""

import errno
import hashlib
import io
import math
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from iris_assets import settings

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]
CSV_COLUMNS = [*FEATURES, "species"]
# A stratified 80/20 split needs each class on both sides: with at least 5 rows of
# each, both sides get a row of every class present (Iris's species, any dataset's class).
MIN_ROWS_PER_CLASS = 5
MIN_ROWS_PER_SPECIES = MIN_ROWS_PER_CLASS
FLOAT32_MAX = 3.4028234663852886e38


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
    y_train: "pd.Series"  # species names
    y_test: "pd.Series"
    class_names: list[str]
    evaluation_digest: str = ""  # MLflow's digest of the test split (X_test with y_test)
    label: str = "species"  # the label column's name: what every client calls the prediction
    dataset: str = "iris"  # the dataset definition's name (datasets/<name>.yaml); models carry it

    @property
    def features(self) -> list[str]:
        return [str(column) for column in self.X_train.columns]


def load_bundled_iris() -> IrisTable:
    from sklearn.datasets import load_iris

    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=dict(zip(bunch.feature_names, FEATURES, strict=True)))
    frame["target"] = frame["target"].astype("int64")
    frame["species"] = frame["target"].map(dict(enumerate(bunch.target_names)))
    return IrisTable(frame=frame, source="sklearn.datasets.load_iris")


def read_bounded(path: str, limit: int, follow_links: bool = True, what: str = "an Iris CSV") -> bytes:
    """The bytes of the regular file ``path``, if it holds at most ``limit`` bytes.

    Read once, from one open file (what was checked is what was read): never a FIFO
    or device (opened without blocking, refused before reading), never more than
    ``limit`` bytes in memory, and with ``follow_links=False`` never through a link.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        if os.path.islink(path):
            raise IrisDataError(f"{path}: is a dangling symbolic link") from None
        raise IrisDataError(f"{path}: cannot be read as CSV (No such file or directory)") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise IrisDataError(f"{path}: is a symbolic link; give a regular file") from None
        raise IrisDataError(f"{path}: cannot be opened ({error.strerror})") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise IrisDataError(f"{path}: is not a regular file (a directory, FIFO or device); give a CSV file")
        if status.st_size > limit:
            raise IrisDataError(
                f"{path}: is {status.st_size:,} bytes; {what} may hold at most {limit:,} bytes ($IRIS_MAX_CSV_BYTES)"
            )
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            data = file.read(limit + 1)
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise IrisDataError(f"{path}: holds more than {limit:,} bytes ($IRIS_MAX_CSV_BYTES)")
    return data


def load_iris_csv(path: str, expected_sha256: Optional[str] = None) -> IrisTable:
    """Read and validate a CSV of Iris measurements; raise IrisDataError naming the problem.

    With ``expected_sha256`` (the new-data sensor's digest of a landing file), a file
    whose content is not the one judged is refused, so a run trains on exactly that.
    """
    # Iris tables are small (the classic one is 5 KB); a file far larger is a mistake,
    # and reading it whole would take the step's memory with it.
    data = read_bounded(path, settings.current().max_csv_bytes)
    if expected_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected_sha256:
            raise IrisDataError(
                f"{path}: its content changed since it was accepted (sha256 {digest[:12]}..., expected "
                f"{expected_sha256[:12]}...)"
            )
    return IrisTable(frame=parse_iris_csv(data, path), source=path)


def parse_iris_csv(data: bytes, name: str) -> "pd.DataFrame":
    """Validate CSV bytes as an Iris table. Messages locate problems, never echo the file's content."""
    import pandas as pd

    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise IrisDataError(f"{name}: is not UTF-8 text (byte {error.start} is not valid UTF-8)") from None
    try:
        frame = pd.read_csv(io.BytesIO(data), encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise IrisDataError(f"{name}: cannot be read as CSV (it is empty)") from None
    except pd.errors.ParserError as error:
        # pandas says where ("Expected 5 fields in line 3, saw 6"), not what.
        raise IrisDataError(f"{name}: cannot be read as CSV ({str(error).strip().splitlines()[-1][:200]})") from None
    return validate_iris_frame(frame, name)


def validate_iris_frame(frame: "pd.DataFrame", name: str) -> "pd.DataFrame":
    import pandas as pd

    columns = list(frame.columns)
    missing = [c for c in CSV_COLUMNS if c not in columns]
    extra = [c for c in columns if c not in CSV_COLUMNS]
    if missing or extra:
        raise IrisDataError(
            f"{name}: columns must be exactly {CSV_COLUMNS}; missing {missing}, and {len(extra)} unexpected "
            f"column{'s' if len(extra) != 1 else ''}"
        )
    if frame.empty:
        raise IrisDataError(f"{name}: has a header but no rows")
    for column in FEATURES:
        values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        # A length in cm: a number, finite, not negative, and within float32 (what the
        # models compute in: ONNX, and scikit-learn's trees).
        bad = ~((values >= 0) & (values <= FLOAT32_MAX))
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise IrisDataError(
                f"{name}: column {column!r} must hold numbers (finite, >= 0, at most {FLOAT32_MAX:.4g}, in cm); "
                f"row {row + 1} {_what_is_wrong(frame[column].iloc[row], values.iloc[row])}"
            )
        frame[column] = values
    species = frame["species"]
    unknown = species.isna() | ~species.astype(str).isin(SPECIES)
    if unknown.any():
        raise IrisDataError(
            f"{name}: {int(unknown.sum())} row(s) have a species other than {SPECIES} (first: row "
            f"{int(unknown.to_numpy().argmax()) + 1})"
        )
    counts = species.value_counts()
    if len(counts) < 2:
        raise IrisDataError(f"{name}: needs at least two species, has {counts.index.tolist()}")
    few = {str(s): int(n) for s, n in counts.items() if n < MIN_ROWS_PER_SPECIES}
    if few:
        raise IrisDataError(
            f"{name}: each species needs at least {MIN_ROWS_PER_SPECIES} rows (a stratified split puts each on "
            f"both sides); {few}"
        )
    frame["target"] = species.map({s: i for i, s in enumerate(SPECIES)}).astype("int64")
    return frame[[*FEATURES, "target", "species"]]


def _what_is_wrong(raw: object, value: float) -> str:
    """What is wrong with a cell, without saying what it holds."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or (isinstance(raw, str) and not raw.strip()):
        return "is empty"
    if math.isnan(value):
        return "is not a number"
    if math.isinf(value) or value > FLOAT32_MAX:
        return "is not finite within float32"
    return "is negative"
