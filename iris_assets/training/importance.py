"""A per-feature measure of the fitted model that is true of its family, never a stand-in.

* random forest: the mean decrease in impurity (``feature_importances_``), logged as
  ``feature_importance.json`` / ``.png`` as the original pipeline did;
* logistic regression: its own coefficients (one per species and feature, on
  standardised features, so their sizes compare), ``coefficients.json`` / ``.png``;
* SVM, MLP, gradient boosting, which have no per-feature measure of their own:
  scikit-learn's ``permutation_importance`` on the test split (the mean drop in
  accuracy when a feature's values are shuffled), ``permutation_importance.json`` / ``.png``.
"""

from dataclasses import dataclass
from typing import Any

from iris_assets.data.schema import Splits
from iris_assets.training.families import Family, final_estimator

PERMUTATION_REPEATS = 10  # shuffles per feature; the mean is logged
PERMUTATION_SEED = 42

# The artifacts (without .json / .png) each kind of measure is logged as.
ARTIFACT_NAMES = {
    "impurity": "feature_importance",
    "coefficients": "coefficients",
    "permutation": "permutation_importance",
}


@dataclass(frozen=True)
class FeatureMeasure:
    name: str  # the artifacts' base name, and the metadata's key
    values: dict  # what the JSON artifact holds
    png: bytes


def _by_size(values: dict[str, float]) -> dict[str, float]:
    return dict(sorted(values.items(), key=lambda item: item[1], reverse=True))


def feature_measure(family: Family, model: Any, splits: Splits) -> FeatureMeasure:
    from iris_assets.plots import coefficients_png, feature_importance_png

    name = ARTIFACT_NAMES[family.importance]
    features = splits.features
    estimator = final_estimator(model)
    if family.importance == "impurity":
        importance = _by_size(dict(zip(features, (float(v) for v in estimator.feature_importances_), strict=True)))
        return FeatureMeasure(name, importance, feature_importance_png(importance))
    if family.importance == "coefficients":
        coefficients = {
            str(species): dict(zip(features, (float(v) for v in row), strict=True))
            for species, row in zip(estimator.classes_, estimator.coef_, strict=True)
        }
        return FeatureMeasure(name, coefficients, coefficients_png(coefficients))
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        model, splits.X_test, splits.y_test, n_repeats=PERMUTATION_REPEATS, random_state=PERMUTATION_SEED
    )
    importance = _by_size(dict(zip(features, (float(v) for v in result.importances_mean), strict=True)))
    return FeatureMeasure(
        name, importance, feature_importance_png(importance, "mean drop in test accuracy when shuffled")
    )
