"""The evaluation asset: metrics on the held-out split (original task "teste")."""

import dagster as dg

from iris_assets import groups
from iris_assets.data.schema import Splits
from iris_assets.evaluation.scoring import AVERAGE, scores
from iris_assets.plots import confusion_matrix_png, markdown_image
from iris_assets.tracking import MlflowRun
from iris_assets.training.model import Classifier


def confusion_matrix_markdown(labels: list[str], matrix: list[list[int]]) -> str:
    header = "| actual \\ predicted | " + " | ".join(labels) + " |"
    rule = "|---" * (len(labels) + 1) + "|"
    rows = [f"| {label} | " + " | ".join(map(str, row)) + " |" for label, row in zip(labels, matrix, strict=True)]
    return "\n".join([header, rule, *rows])


def evaluate_and_log(model: Classifier, splits: Splits, mlflow: MlflowRun) -> tuple[dict[str, float], dict]:
    """Score the model on the test split and log the scores, confusion matrix and report;
    the scores and their materialisation metadata. The pipeline's metrics and every sweep trial."""
    from sklearn.metrics import classification_report, confusion_matrix

    predicted = model.predict(splits.X_test)
    result = scores(splits.y_test, predicted)
    labels = splits.class_names
    matrix = confusion_matrix(splits.y_test, predicted, labels=labels).tolist()
    report = classification_report(splits.y_test, predicted, labels=labels, zero_division=0)

    mlflow.log_metrics(result)
    mlflow.set_tags({"metrics_average": AVERAGE, "evaluation_digest": splits.evaluation_digest})
    mlflow.log_dict({"labels": splits.class_names, "matrix": matrix}, "confusion_matrix.json")
    mlflow.log_text(report, "classification_report.txt")
    picture = confusion_matrix_png(splits.y_test, predicted, splits.class_names)
    mlflow.log_bytes(picture, "confusion_matrix.png")
    metadata = {
        **{name: dg.MetadataValue.float(value) for name, value in result.items()},
        "test_rows": len(splits.X_test),
        "confusion_matrix": dg.MetadataValue.md(confusion_matrix_markdown(splits.class_names, matrix)),
        "confusion_matrix_image": dg.MetadataValue.md(markdown_image(picture, "confusion matrix")),
    }
    return result, metadata


@dg.asset(group_name=groups.PIPELINE, kinds={"scikitlearn", "mlflow"})
def metrics(context: dg.AssetExecutionContext, model: Classifier, splits: Splits, mlflow: MlflowRun) -> dg.Output[dict]:
    """Accuracy, and macro-averaged precision, recall and F1 of the model on the test split."""
    result, metadata = evaluate_and_log(model, splits, mlflow)
    return dg.Output(result, metadata={**metadata, **mlflow.link(context)})
