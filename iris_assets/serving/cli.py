"""The `iris-predict` command: species of measurements read as CSV or JSON, with the packaged ONNX model.

    iris-predict measurements.csv                      # the champion of $IRIS_REGISTERED_MODEL (iris-classifier)
    iris-predict --model models:/iris-classifier/3 measurements.csv
    echo '[[5.1, 3.5, 1.4, 0.2]]' | iris-predict --model runs:/<run_id> -

Rows are CSV (the four measurements, with or without a header naming them) or
JSON (a list of rows, each a list of four numbers or an object keyed by
measurement name). The input may hold at most ``MAX_INPUT_BYTES`` (16 MiB; split
larger batches), which bounds the command's memory. Bad input is a one-line error
and exit status 2, never a traceback.
"""

import argparse
import csv
import io
import json
import math
import sys
from typing import Any, NamedTuple, Optional, Sequence

from iris_assets import settings
from iris_assets.data.schema import FEATURES, FLOAT32_MAX
from iris_assets.serving.predictor import IrisOnnxPredictor, PredictionError, Predictions

MAX_INPUT_BYTES = 16 * 1024 * 1024


def read_input(source: str) -> str:
    """The text of a file (or ``-``: standard input), refused beyond MAX_INPUT_BYTES before it is all read."""
    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with open(source, "rb") as file:
                data = file.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise PredictionError(f"cannot read {source!r} ({error.strerror})") from None
    if len(data) > MAX_INPUT_BYTES:
        raise PredictionError(f"input is larger than {MAX_INPUT_BYTES:,} bytes; split it into smaller batches")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PredictionError(f"input is not UTF-8 text (byte {error.start})") from None


def parse_rows(
    text: str, fmt: str = "auto", features: Sequence[str] = FEATURES, dataset: str = "iris"
) -> list[list[float]]:
    """Rows of the model's ``features`` (Iris's four measurements by default) from CSV or JSON text, validated."""
    columns = Columns(list(features), dataset)
    if fmt == "auto":
        first = text.lstrip()[:1]
        fmt = "json" if first in ("[", "{") or (first == '"' and _is_json(text)) else "csv"
    rows = _json_rows(text) if fmt == "json" else _csv_rows(text, columns)
    if not rows:
        raise PredictionError("no rows to predict")
    return [_validated(row, number, columns) for number, row in enumerate(rows, start=1)]


class Columns(NamedTuple):
    """What the model reads: its dataset's feature columns, in order."""

    features: list[str]
    dataset: str

    def shown(self) -> str:
        named = self.features if len(self.features) <= 8 else [*self.features[:8], f"... {len(self.features)} in all"]
        return f"{named} (dataset {self.dataset!r})"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _csv_rows(text: str, columns: Columns) -> list[Any]:
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as error:  # e.g. a field over the csv module's 128 KiB limit
        raise PredictionError(f"input is not valid CSV ({error})") from None
    if rows and not _is_number(rows[0][0]):
        header = [cell.strip() for cell in rows[0]]
        if sorted(header) != sorted(columns.features):
            # Iris's columns given to another dataset's model: say whose they are.
            whose = " (they are dataset 'iris''s)" if sorted(header) == sorted(FEATURES) else ""
            raise PredictionError(f"CSV header {header}{whose} must name exactly the model's columns {columns.shown()}")
        return [dict(zip(header, row, strict=True)) if len(row) == len(header) else row for row in rows[1:]]
    return rows


def _json_rows(text: str) -> list[Any]:
    try:
        data = json.loads(text)
    except ValueError as error:  # also a number of more digits than Python converts (4,300)
        raise PredictionError(f"input is not valid JSON ({str(error).split(';')[0][:120]})") from None
    if isinstance(data, dict) or (isinstance(data, list) and data and not isinstance(data[0], (list, dict))):
        data = [data]  # a single row
    if not isinstance(data, list):
        raise PredictionError(f"JSON input must be a list of rows, not a {type(data).__name__}")
    return data


def _validated(row: Any, number: int, columns: Columns) -> list[float]:
    features = columns.features
    if isinstance(row, dict):
        if sorted(row) != sorted(features):
            raise PredictionError(f"row {number}: keys {sorted(row)} must be exactly the model's {columns.shown()}")
        row = [row[name] for name in features]
    if not isinstance(row, list) or len(row) != len(features):
        count = len(row) if isinstance(row, list) else "not a list of"
        raise PredictionError(f"row {number}: has {count} values, expected {len(features)} {columns.shown()}")
    values = []
    for name, value in zip(features, row, strict=True):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise PredictionError(f"row {number}: {name} is missing")
        shown = _shown(value)
        if isinstance(value, bool) or not _is_number(value):
            raise PredictionError(f"row {number}: {name} = {shown} is not a number")
        number_value = float(value)
        if not math.isfinite(number_value):
            raise PredictionError(f"row {number}: {name} = {shown} is not a finite number")
        if abs(number_value) > FLOAT32_MAX:
            raise PredictionError(f"row {number}: {name} = {shown} is outside the float32 range the model computes in")
        values.append(number_value)
    return values


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text):,} characters)"


def format_predictions(predictions: Predictions, as_json: bool, label: str = "species") -> str:
    """CSV (or JSON) of each row's predicted class, under the model's ``label`` name, and its probabilities."""
    if as_json:
        return json.dumps(
            [
                {label: species, "probabilities": dict(zip(predictions.class_names, map(float, row), strict=True))}
                for species, row in zip(predictions.species, predictions.probabilities, strict=True)
            ],
            indent=2,
        )
    lines = [",".join([label, *predictions.class_names])]
    for species, row in zip(predictions.species, predictions.probabilities, strict=True):
        lines.append(",".join([species, *(f"{p:.4f}" for p in row)]))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="iris-predict", description="Predict Iris species with the packaged ONNX model."
    )
    parser.add_argument(
        "--model",
        help="a .onnx file, runs:/<run_id>, or models:/<name>@<alias> (default: the champion of the registered "
        f"model, models:/<$IRIS_REGISTERED_MODEL, else {settings.DEFAULT_REGISTERED_MODEL}>@champion)",
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the embedded store)"
    )
    parser.add_argument("--format", choices=["auto", "csv", "json"], default="auto", help="input format")
    parser.add_argument("--json", action="store_true", help="print JSON instead of CSV")
    parser.add_argument("input", help="a CSV or JSON file of measurements, or - for standard input")
    args = parser.parse_args(argv)
    try:
        text = read_input(args.input)
        model = args.model or f"models:/{settings.current().registered_model}@champion"
        # The model first: its own file says which columns it reads (another dataset's model, others).
        predictor = IrisOnnxPredictor.load(model, args.tracking_uri)
        rows = parse_rows(text, args.format, predictor.features, predictor.dataset)
        print(format_predictions(predictor.predict(rows), args.json, predictor.label))
    except (PredictionError, settings.SettingError) as error:
        print(f"iris-predict: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
