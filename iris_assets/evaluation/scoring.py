"""How a model is scored: one definition of the metrics, for the evaluation, the gate and promotion.

Precision, recall and F1 are macro averages: every species counts the same. (On
the default stratified split the classes are balanced, so the weighted average
is the same number.)
"""

from typing import Any, Literal, get_args

AVERAGE = "macro"
Metric = Literal["accuracy", "precision", "recall", "f1_score"]
METRICS: tuple[Metric, ...] = get_args(Metric)


def scores(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Accuracy and macro-averaged precision, recall and F1 of ``y_pred`` against ``y_true``."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average=AVERAGE, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision),
        "recall": float(recall),
        "f1_score": float(f1),
    }
