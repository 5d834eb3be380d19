"""The evaluation asset: metrics on the held-out split (original task "teste").

Precision, recall and F1 are macro averages: every species counts the same. (On
the default stratified split the classes are balanced, so the weighted average
is the same number.)
"""

import dagster as dg

from iris_assets.data.schema import Splits
from iris_assets.plots import confusion_matrix_png, markdown_image
from iris_assets.tracking import MlflowRun
from iris_assets.training.assets import Classifier

AVERAGE = "macro"


def confusion_matrix_markdown(labels: list[str], matrix: list[list[int]]) -> str:
    header = "| actual \\ predicted | " + " | ".join(labels) + " |"
    rule = "|---" * (len(labels) + 1) + "|"
    rows = [f"| {label} | " + " | ".join(map(str, row)) + " |" for label, row in zip(labels, matrix, strict=True)]
    return "\n".join([header, rule, *rows])


@dg.asset(group_name="iris", kinds={"scikitlearn", "mlflow"})
def metrics(context: dg.AssetExecutionContext, model: Classifier, splits: Splits, mlflow: MlflowRun) -> dg.Output[dict]:
    """Accuracy, and macro-averaged precision, recall and F1 of the model on the test split."""
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        confusion_matrix,
        precision_recall_fscore_support,
    )

    predicted = model.predict(splits.X_test)
    precision, recall, f1, _ = precision_recall_fscore_support(
        splits.y_test, predicted, average=AVERAGE, zero_division=0
    )
    scores = {
        "accuracy": float(accuracy_score(splits.y_test, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1_score": float(f1),
    }
    labels = list(range(len(splits.class_names)))
    matrix = confusion_matrix(splits.y_test, predicted, labels=labels).tolist()
    report = classification_report(
        splits.y_test, predicted, labels=labels, target_names=splits.class_names, zero_division=0
    )

    mlflow.log_metrics(scores)
    mlflow.set_tags({"metrics_average": AVERAGE})
    mlflow.log_dict({"labels": splits.class_names, "matrix": matrix}, "confusion_matrix.json")
    mlflow.log_text(report, "classification_report.txt")
    picture = confusion_matrix_png(splits.y_test, predicted, splits.class_names)
    mlflow.log_bytes(picture, "confusion_matrix.png")
    return dg.Output(
        scores,
        metadata={
            **{name: dg.MetadataValue.float(value) for name, value in scores.items()},
            "test_rows": len(splits.X_test),
            "confusion_matrix": dg.MetadataValue.md(confusion_matrix_markdown(splits.class_names, matrix)),
            "confusion_matrix_image": dg.MetadataValue.md(markdown_image(picture, "confusion matrix")),
            **mlflow.link(context),
        },
    )
