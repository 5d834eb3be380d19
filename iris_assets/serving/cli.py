"""The `iris-predict` command: species of measurements read as CSV or JSON, with the packaged ONNX model.

    iris-predict --model models:/iris-random-forest@champion measurements.csv
    echo '[[5.1, 3.5, 1.4, 0.2]]' | iris-predict --model runs:/<run_id> -

Rows are CSV (the four measurements, with or without a header naming them) or
JSON (a list of rows, each a list of four numbers or an object keyed by
measurement name). Bad input is a one-line error and exit status 2.
"""

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from iris_assets.data.schema import FEATURES
from iris_assets.serving.predictor import IrisOnnxPredictor, PredictionError, Predictions


def parse_rows(text: str, fmt: str = "auto") -> list[list[float]]:
    """Rows of the four measurements from CSV or JSON text, validated."""
    if fmt == "auto":
        fmt = "json" if text.lstrip()[:1] in ("[", "{") else "csv"
    rows = _json_rows(text) if fmt == "json" else _csv_rows(text)
    if not rows:
        raise PredictionError("no rows to predict")
    return [_validated(row, number) for number, row in enumerate(rows, start=1)]


def _csv_rows(text: str) -> list[Any]:
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if rows and not _is_number(rows[0][0]):
        header = [cell.strip() for cell in rows[0]]
        if sorted(header) != sorted(FEATURES):
            raise PredictionError(f"CSV header {header} must name exactly the columns {FEATURES}")
        return [dict(zip(header, row, strict=True)) if len(row) == len(header) else row for row in rows[1:]]
    return rows


def _json_rows(text: str) -> list[Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise PredictionError(f"input is not valid JSON ({error})") from None
    if isinstance(data, dict) or (isinstance(data, list) and data and not isinstance(data[0], (list, dict))):
        data = [data]  # a single row
    if not isinstance(data, list):
        raise PredictionError("JSON input must be a list of rows")
    return data


def _validated(row: Any, number: int) -> list[float]:
    if isinstance(row, dict):
        if sorted(row) != sorted(FEATURES):
            raise PredictionError(f"row {number}: keys {sorted(row)} must be exactly {FEATURES}")
        row = [row[name] for name in FEATURES]
    if not isinstance(row, list) or len(row) != len(FEATURES):
        count = len(row) if isinstance(row, list) else "not a list of"
        raise PredictionError(f"row {number}: has {count} values, expected {len(FEATURES)} {FEATURES}")
    values = []
    for name, value in zip(FEATURES, row, strict=True):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise PredictionError(f"row {number}: {name} is missing")
        if isinstance(value, bool) or not _is_number(value):
            raise PredictionError(f"row {number}: {name} = {value!r} is not a number")
        number_value = float(value)
        if not math.isfinite(number_value):
            raise PredictionError(f"row {number}: {name} = {value!r} is not a finite number")
        values.append(number_value)
    return values


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def format_predictions(predictions: Predictions, as_json: bool) -> str:
    if as_json:
        return json.dumps(
            [
                {"species": species, "probabilities": dict(zip(predictions.class_names, map(float, row), strict=True))}
                for species, row in zip(predictions.species, predictions.probabilities, strict=True)
            ],
            indent=2,
        )
    lines = [",".join(["species", *predictions.class_names])]
    for species, row in zip(predictions.species, predictions.probabilities, strict=True):
        lines.append(",".join([species, *(f"{p:.4f}" for p in row)]))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="iris-predict", description="Predict Iris species with the packaged ONNX model."
    )
    parser.add_argument(
        "--model",
        default="models:/iris-random-forest@champion",
        help="a .onnx file, runs:/<run_id>, or models:/<name>@<alias> (default: %(default)s)",
    )
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the embedded store)"
    )
    parser.add_argument("--format", choices=["auto", "csv", "json"], default="auto", help="input format")
    parser.add_argument("--json", action="store_true", help="print JSON instead of CSV")
    parser.add_argument("input", help="a CSV or JSON file of measurements, or - for standard input")
    args = parser.parse_args(argv)
    try:
        if args.input == "-":
            text = sys.stdin.read()
        else:
            try:
                text = Path(args.input).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise PredictionError(f"cannot read {args.input!r} ({error})") from None
        rows = parse_rows(text, args.format)
        predictor = IrisOnnxPredictor.load(args.model, args.tracking_uri)
        print(format_predictions(predictor.predict(rows), args.json))
    except PredictionError as error:
        print(f"iris-predict: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
