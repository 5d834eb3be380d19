"""The estimator families the ``model`` asset and sweeps choose from: one registry, one entry per family.

Each family says which of the ``model`` asset's config fields are its hyperparameters,
how its unfitted estimator is built, whether its inputs are standardised first (a
scikit-learn ``Pipeline([StandardScaler, estimator])`` for the families that are
sensitive to scale: SVM, logistic regression, MLP; the tree ensembles are not), the
types skops must trust to load it back from MLflow, and which per-feature measure
honestly describes it (see ``iris_assets/training/importance.py``).

Hyperparameter values come from ``ModelConfig`` (``training/assets.py``), which
holds every field's default and bounds; a family's ``own_defaults`` fill only the
fields whose config default is ``None`` because the families disagree about them
(``max_iter``: solver iterations for logistic regression and the MLP, boosting rounds
for gradient boosting).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

FamilyName = Literal["random_forest", "svm", "logistic_regression", "mlp", "hist_gradient_boosting"]
FAMILY_NAMES: tuple[str, ...] = get_args(FamilyName)
DEFAULT_FAMILY: FamilyName = "random_forest"
# What names a model's family everywhere: the model config's field, the MLflow param, the
# registered version's tag, the first part of a sweep trial's key.
FAMILY = "family"

# How a family's per-feature measure is obtained (training/importance.py):
# "impurity": the forest's mean decrease in impurity (feature_importances_);
# "coefficients": the linear model's own weights on standardised features;
# "permutation": scikit-learn's permutation_importance on the test split, for models
# that have no per-feature measure of their own.
Importance = Literal["impurity", "coefficients", "permutation"]


@dataclass(frozen=True)
class Family:
    name: str
    estimator: str  # the scikit-learn class that does the classifying
    hyperparameters: tuple[str, ...]  # shape the model: logged, tunable in sweeps
    build: Callable[[Mapping[str, Any]], Any]  # resolved parameters -> the unfitted estimator (unscaled)
    importance: Importance
    scaled: bool = False
    skops_trusted_types: tuple[str, ...] = ()
    own_defaults: Mapping[str, Any] = field(default_factory=dict)
    runtime: tuple[str, ...] = ()  # change speed, never the model: allowed, not logged nor tuned

    @property
    def parameters(self) -> tuple[str, ...]:
        """Every config field this family reads."""
        return self.hyperparameters + self.runtime


def _forest(p: Mapping[str, Any]) -> Any:
    # n_jobs parallelises fitting and prediction over cores; the trees, and so every
    # prediction, are the same whatever it is (they depend on the seed only).
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=p["n_estimators"], max_depth=p["max_depth"], random_state=p["random_state"], n_jobs=p["n_jobs"]
    )


def _svm(p: Mapping[str, Any]) -> Any:
    # Probabilities by Platt scaling, the way scikit-learn 1.9 recommends instead of the
    # deprecated SVC(probability=True) (which warns on every fit, and goes in 1.11):
    # one SVC on all training rows, its sigmoid calibrated on cross-validated predictions.
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    return CalibratedClassifierCV(SVC(C=p["C"], kernel=p["kernel"], gamma=p["gamma"]), ensemble=False)


def _logistic_regression(p: Mapping[str, Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=p["C"], max_iter=p["max_iter"])


def _mlp(p: Mapping[str, Any]) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(
        hidden_layer_sizes=tuple(p["hidden_layer_sizes"]),
        alpha=p["alpha"],
        learning_rate_init=p["learning_rate_init"],
        max_iter=p["max_iter"],
        random_state=p["random_state"],
    )


def _hist_gradient_boosting(p: Mapping[str, Any]) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        learning_rate=p["learning_rate"],
        max_iter=p["max_iter"],
        max_depth=p["max_depth"],
        max_leaf_nodes=p["max_leaf_nodes"],
        random_state=p["random_state"],
    )


# skops types: what skops.io.get_untrusted_types reports for each family's fitted model
# (a Pipeline and StandardScaler are trusted by skops already).
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            "random_forest",
            "RandomForestClassifier",
            ("n_estimators", "max_depth", "random_state"),
            _forest,
            "impurity",
            skops_trusted_types=("sklearn.tree._tree.Tree",),
            runtime=("n_jobs",),
        ),
        Family(
            "svm",
            "CalibratedClassifierCV",
            ("C", "kernel", "gamma"),
            _svm,
            "permutation",
            scaled=True,
            skops_trusted_types=(
                "sklearn.calibration._CalibratedClassifier",
                "sklearn.calibration._SigmoidCalibration",
            ),
            own_defaults={"gamma": "scale"},
        ),
        Family(
            "logistic_regression",
            "LogisticRegression",
            ("C", "max_iter"),
            _logistic_regression,
            "coefficients",
            scaled=True,
            own_defaults={"max_iter": 100},
        ),
        Family(
            "mlp",
            "MLPClassifier",
            ("hidden_layer_sizes", "alpha", "learning_rate_init", "max_iter", "random_state"),
            _mlp,
            "permutation",
            scaled=True,
            skops_trusted_types=("sklearn.neural_network._stochastic_optimizers.AdamOptimizer",),
            # scikit-learn's 200 Adam epochs stop short of convergence on 120 rows (a warning each fit)
            own_defaults={"max_iter": 1000},
        ),
        Family(
            "hist_gradient_boosting",
            "HistGradientBoostingClassifier",
            ("learning_rate", "max_iter", "max_depth", "max_leaf_nodes", "random_state"),
            _hist_gradient_boosting,
            "permutation",
            skops_trusted_types=("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",),
            own_defaults={"max_iter": 100},
        ),
    )
}
assert tuple(FAMILIES) == FAMILY_NAMES


def build_model(family: str, params: Mapping[str, Any]) -> Any:
    """The unfitted model of ``family`` with resolved ``params``: its estimator, standardised first if it needs it."""
    chosen = FAMILIES[family]
    estimator = chosen.build(params)
    if not chosen.scaled:
        return estimator
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), (family, estimator)])


def final_estimator(model: Any) -> Any:
    """The estimator that classifies (the last step of a Pipeline)."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def family_of(model: Any) -> Family:
    """The family of a fitted model, by its classifying estimator."""
    estimator = type(final_estimator(model)).__name__
    for family in FAMILIES.values():
        if family.estimator == estimator:
            return family
    raise ValueError(f"{estimator} is not a model of any family ({', '.join(FAMILY_NAMES)})")


def ensemble_size(model: Any) -> int:
    """How many trees a model adds up per class, which ONNX sums in float32 (see
    packaging.onnx.parity_tolerance): a forest's trees, a boosted model's iterations; 1 otherwise."""
    estimator, family = final_estimator(model), family_of(model).name
    if family == "random_forest":
        return len(estimator.estimators_)
    if family == "hist_gradient_boosting":
        return int(estimator.n_iter_)
    return 1
