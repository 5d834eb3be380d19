"""Checks on the raw table: its schema, missing values, plausible ranges and class balance.

They run in the ``raw_data`` step (they look at its value only), and show as four
checks of ``raw_data`` in the UI. Each outcome is also mirrored in the MLflow run
(tag ``check.<name>`` = passed or failed, and the numbers as ``check.<name>.*`` metrics).
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from iris_assets.data.schema import FEATURES, SPECIES, IrisTable
from iris_assets.tracking import MlflowRun

# Plausible measurements in centimetres (the real table spans 0.1 to 7.9).
MEASUREMENT_RANGE_CM = (0.0, 30.0)
# The smallest class must be at least this share of the largest.
MIN_CLASS_RATIO = 0.5

RAW_DATA_CHECKS = ["schema", "no_missing_values", "value_ranges", "class_balance"]


RAW_DATA_CHECK_SPECS = [
    dg.AssetCheckSpec(f"raw_data_{name}", asset="raw_data", description=description)
    for name, description in zip(
        RAW_DATA_CHECKS,
        [
            "The table has the four measurements (numeric), target and species columns.",
            "No measurement or label is missing.",
            f"Every measurement lies within {MEASUREMENT_RANGE_CM} cm.",
            f"The smallest class is at least {MIN_CLASS_RATIO:.0%} of the largest.",
        ],
        strict=True,
    )
]


def raw_data_check_results(raw_data: IrisTable, mlflow: MlflowRun) -> Iterator[dg.AssetCheckResult]:
    import pandas as pd

    frame = raw_data.frame
    expected = [*FEATURES, "target", "species"]
    schema_ok = list(frame.columns) == expected and all(pd.api.types.is_numeric_dtype(frame[c]) for c in FEATURES)
    missing = int(frame.isna().sum().sum())
    low, high = MEASUREMENT_RANGE_CM
    out_of_range = int(((frame[FEATURES] <= low) | (frame[FEATURES] >= high)).sum().sum())
    counts = frame["species"].value_counts().reindex(SPECIES, fill_value=0)
    ratio = float(counts.min() / counts.max()) if counts.max() else 0.0
    # name -> (passed, numbers: also MLflow metrics, more metadata for the UI)
    outcomes: dict[str, tuple[bool, dict[str, float], dict[str, Any]]] = {
        "schema": (schema_ok, {}, {"columns": dg.MetadataValue.json(list(map(str, frame.columns)))}),
        "no_missing_values": (missing == 0, {"missing": missing}, {}),
        "value_ranges": (
            out_of_range == 0,
            {"out_of_range": out_of_range},
            {"min": float(frame[FEATURES].min().min()), "max": float(frame[FEATURES].max().max())},
        ),
        "class_balance": (
            ratio >= MIN_CLASS_RATIO,
            {"min_max_ratio": ratio},
            {"counts": dg.MetadataValue.json({k: int(v) for k, v in counts.items()})},
        ),
    }
    for name, (passed, numbers, extra) in outcomes.items():
        result = dg.AssetCheckResult(
            check_name=f"raw_data_{name}",
            asset_key="raw_data",
            passed=bool(passed),
            metadata={**numbers, **extra},
        )
        yield mlflow.record_check(result, f"raw_data_{name}", **numbers)
