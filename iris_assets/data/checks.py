"""Checks on the raw table: its schema, missing values, plausible ranges and class balance.

They run in the ``raw_data`` step (they look at its value only), and show as four
checks of ``raw_data`` in the UI. Each outcome is also mirrored in the MLflow run
(tag ``check.<name>`` = passed or failed, and the numbers as ``check.<name>.*`` metrics).
"""

from collections.abc import Iterator
from typing import Any, Optional

import dagster as dg

from iris_assets.data.schema import FEATURES, SPECIES, IrisTable
from iris_assets.tracking import MlflowRun

# Plausible measurements in centimetres (the real table spans 0.1 to 7.9).
MEASUREMENT_RANGE_CM = (0.0, 30.0)
# The smallest class must be at least this share of the largest.
MIN_CLASS_RATIO = 0.5

RAW_DATA_CHECKS = ["schema", "no_missing_values", "value_ranges", "class_balance"]


def raw_data_check_specs(asset_key: "str | dg.AssetKey" = "raw_data", value_ranges: bool = True) -> list:
    """The raw table's checks, on ``asset_key`` (Iris's ``raw_data``, or a dataset's ``<name>/raw_data``).

    ``value_ranges`` is Iris's alone: its measurements have a plausible range in cm; another
    dataset's features have no range the project could know (they are refused unless finite)."""
    iris = value_ranges  # only Iris's table knows what its columns measure
    descriptions = {
        "schema": "The table has the four measurements (numeric), target and species columns."
        if iris
        else "The table has its feature columns (numeric) and its label column.",
        "no_missing_values": "No measurement or label is missing." if iris else "No feature or label is missing.",
        "value_ranges": f"Every measurement lies within {MEASUREMENT_RANGE_CM} cm.",
        "class_balance": f"The smallest class is at least {MIN_CLASS_RATIO:.0%} of the largest.",
    }
    return [
        dg.AssetCheckSpec(f"raw_data_{name}", asset=asset_key, description=descriptions[name])
        for name in RAW_DATA_CHECKS
        if value_ranges or name != "value_ranges"
    ]


RAW_DATA_CHECK_SPECS = raw_data_check_specs()


def raw_data_check_results(raw_data: IrisTable, mlflow: MlflowRun) -> Iterator[dg.AssetCheckResult]:
    frame = raw_data.frame
    yield from table_check_results(
        frame, FEATURES, "species", SPECIES, [*FEATURES, "target", "species"], mlflow, MEASUREMENT_RANGE_CM
    )


def table_check_results(
    frame: Any,
    features: list[str],
    label: str,
    class_names: list[str],
    expected_columns: list[str],
    mlflow: MlflowRun,
    value_range: Optional[tuple[float, float]] = None,
    asset_key: "str | dg.AssetKey" = "raw_data",
) -> Iterator[dg.AssetCheckResult]:
    """The raw table's checks (``value_ranges`` only with a ``value_range``), each mirrored in the MLflow run."""
    import pandas as pd

    schema_ok = list(frame.columns) == expected_columns and all(
        pd.api.types.is_numeric_dtype(frame[c]) for c in features
    )
    missing = int(frame.isna().sum().sum())
    counts = frame[label].value_counts().reindex(class_names, fill_value=0)
    ratio = float(counts.min() / counts.max()) if counts.max() else 0.0
    # name -> (passed, numbers: also MLflow metrics, more metadata for the UI)
    outcomes: dict[str, tuple[bool, dict[str, float], dict[str, Any]]] = {
        "schema": (schema_ok, {}, {"columns": dg.MetadataValue.json(list(map(str, frame.columns)))}),
        "no_missing_values": (missing == 0, {"missing": missing}, {}),
    }
    if value_range is not None:
        low, high = value_range
        out_of_range = int(((frame[features] <= low) | (frame[features] >= high)).sum().sum())
        outcomes["value_ranges"] = (
            out_of_range == 0,
            {"out_of_range": out_of_range},
            {"min": float(frame[features].min().min()), "max": float(frame[features].max().max())},
        )
    outcomes["class_balance"] = (
        ratio >= MIN_CLASS_RATIO,
        {"min_max_ratio": ratio},
        {"counts": dg.MetadataValue.json({k: int(v) for k, v in counts.items()})},
    )
    for name, (passed, numbers, extra) in outcomes.items():
        result = dg.AssetCheckResult(
            check_name=f"raw_data_{name}",
            asset_key=asset_key,
            passed=bool(passed),
            metadata={**numbers, **extra},
        )
        yield mlflow.record_check(result, f"raw_data_{name}", **numbers)
