"""Data: the Iris table, its validation, its split, and the checks on it."""

# Asset values stored by earlier versions were pickled as iris_assets.data.IrisTable / .Splits.
from iris_assets.data.schema import IrisTable, Splits

__all__ = ["IrisTable", "Splits"]
