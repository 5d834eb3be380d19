"""What the model is to the rest of the pipeline: its interface, how MLflow stores it, how the forest is built."""

from collections.abc import Sequence
from typing import Any, Optional, Protocol, runtime_checkable

from iris_assets.training.families import build_model


def model_requirements() -> list[str]:
    """The model's pip requirements, pinned to what trained it.

    Given explicitly, MLflow skips inferring them, which loads the model again in
    a subprocess (seconds per run).
    """
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "scikit-learn", "skops", "numpy", "scipy", "pandas")]


@runtime_checkable
class Classifier(Protocol):
    """What downstream assets need of the model, whatever its family (typed without importing scikit-learn)."""

    classes_: "Sequence[Any]"

    def predict(self, X): ...

    def predict_proba(self, X): ...


def build_forest(n_estimators: int, max_depth: Optional[int], random_state: int, n_jobs: Optional[int]) -> Any:
    """The unfitted random forest (the default family)."""
    return build_model(
        "random_forest",
        {"n_estimators": n_estimators, "max_depth": max_depth, "random_state": random_state, "n_jobs": n_jobs},
    )
