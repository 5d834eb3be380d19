"""The baseline: the whole Iris graph's work as one plain Python script, no Dagster.

Same data, split, forest, metrics, plots, artifacts, dataset inputs, asset-check
numbers, ONNX conversion with its parity check (run twice, as the graph does: once
in ``onnx_model``, once in the ``parity`` check), model registration and champion
promotion, and the same MLflow logging calls, with MLflow's plain fluent API in one
process. Each section names the asset or check it mirrors.

It deliberately imports nothing from ``iris_assets``: importing that package
imports Dagster, which is exactly the cost the benchmark measures.

    MLFLOW_TRACKING_URI=sqlite:///tmp/x/mlflow.db python benchmarks/baseline_plain.py
"""

import io
import json
import os
import re
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import mlflow
import mlflow.data
import mlflow.sklearn
from mlflow import MlflowClient

EXPERIMENT = os.environ.get("IRIS_MLFLOW_EXPERIMENT", "relatorio-II-iris-pipeline")
REGISTERED_MODEL = os.environ.get("IRIS_REGISTERED_MODEL", "iris-random-forest")
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = ["setosa", "versicolor", "virginica"]


def log_bytes(data: bytes, artifact_file: str) -> None:
    folder, _, name = artifact_file.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(data)
        mlflow.log_artifact(str(Path(tmp) / name), folder or None)


def record_check(name: str, passed: bool, **numbers: float) -> None:
    mlflow.set_tags({f"check.{name}": "passed" if passed else "failed"})
    if numbers:
        mlflow.log_metrics({f"check.{name}.{key}": float(value) for key, value in numbers.items()})


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(4.5, 3.6), dpi=100, layout="constrained")


def experiment_id(client: MlflowClient, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:///"):  # artifacts next to the database, as the graph does
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", EXPERIMENT)
        location = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts" / slug).as_uri()
    return client.create_experiment(EXPERIMENT, artifact_location=location)


def parity(forest, onnx_bytes: bytes, X) -> tuple[int, float]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: np.asarray(X, dtype=np.float32)})
    return int((labels != forest.predict(X)).sum()), float(np.abs(probabilities - forest.predict_proba(X)).max())


def score(v) -> tuple[float, float, int]:
    return (float(v.tags.get("accuracy", "-1")), float(v.tags.get("f1_score", "-1")), int(v.version))


def promote(client: MlflowClient, mine) -> str:
    """Champion = best accuracy, then F1, then newest; otherwise challenger (as registry.promote)."""
    from mlflow.exceptions import MlflowException

    def alias(name):
        try:
            return str(client.get_model_version_by_alias(REGISTERED_MODEL, name).version)
        except MlflowException:
            return None

    def versions():
        found = {str(v.version): v for v in client.search_model_versions(f"name = '{REGISTERED_MODEL}'")}
        found.setdefault(str(mine.version), mine)
        return list(found.values())

    for _ in range(10):
        best = max(versions(), key=score)
        current = alias("champion")
        if current != str(best.version):
            client.set_registered_model_alias(REGISTERED_MODEL, "champion", str(best.version))
            if current is not None:
                client.set_model_version_tag(REGISTERED_MODEL, current, "superseded_by", f"v{best.version}")
        fresh = max(versions(), key=score)
        if str(fresh.version) == str(best.version) and alias("champion") == str(best.version):
            break
    if str(mine.version) != str(best.version):
        client.set_registered_model_alias(REGISTERED_MODEL, "challenger", str(mine.version))
        client.set_model_version_tag(REGISTERED_MODEL, str(mine.version), "not_promoted_reason", "below champion")
    return str(best.version)


def main() -> str:
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import (
        ConfusionMatrixDisplay,
        accuracy_score,
        classification_report,
        confusion_matrix,
        precision_recall_fscore_support,
    )
    from sklearn.model_selection import train_test_split

    tracking_uri = os.environ["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    mlflow.set_experiment(experiment_id=experiment_id(client, tracking_uri))
    run = mlflow.start_run(
        run_name=f"baseline-{int(time.time())}",
        tags={"mlflow.source.name": "baseline_plain", "dagster_job_name": "baseline_plain"},
    )
    run_id = run.info.run_id

    # raw_data
    bunch = load_iris(as_frame=True)
    frame = bunch.frame.rename(columns=dict(zip(bunch.feature_names, FEATURES, strict=True)))
    frame["target"] = frame["target"].astype("int64")
    frame["species"] = frame["target"].map(dict(enumerate(bunch.target_names)))
    source = "sklearn.datasets.load_iris"
    counts = frame["species"].value_counts().reindex(SPECIES, fill_value=0)
    mlflow.log_input(mlflow.data.from_pandas(frame, source=source, name="iris_raw", targets="target"), context="raw")

    # raw_data_checks (the same four checks and numbers)
    schema_ok = list(frame.columns) == [*FEATURES, "target", "species"] and all(
        pd.api.types.is_numeric_dtype(frame[c]) for c in FEATURES
    )
    missing = int(frame.isna().sum().sum())
    out_of_range = int(((frame[FEATURES] <= 0.0) | (frame[FEATURES] >= 30.0)).sum().sum())
    ratio = float(counts.min() / counts.max())
    record_check("raw_data_schema", schema_ok)
    record_check("raw_data_no_missing_values", missing == 0, missing=missing)
    record_check("raw_data_value_ranges", out_of_range == 0, out_of_range=out_of_range)
    record_check("raw_data_class_balance", ratio >= 0.5, min_max_ratio=ratio)

    # splits
    X_train, X_test, y_train, y_test = train_test_split(
        frame[FEATURES], frame["target"], test_size=0.2, random_state=42, stratify=frame["target"]
    )
    mlflow.log_params({"test_size": 0.2, "split_random_state": 42, "stratified": True})
    for part, context, X, y in (("train", "training", X_train, y_train), ("test", "evaluation", X_test, y_test)):
        dataset = mlflow.data.from_pandas(X.assign(target=y), source=source, name=f"iris_{part}", targets="target")
        mlflow.log_input(dataset, context=context)

    # model
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=42)
    forest.fit(X_train, y_train)
    mlflow.log_params({"n_estimators": 100, "max_depth": 10, "random_state": 42})
    example = X_train.head(5)
    mlflow.sklearn.log_model(
        forest,
        name="model",
        signature=infer_signature(example, forest.predict(example)),
        input_example=example,
        serialization_format="skops",
        skops_trusted_types=["sklearn.tree._tree.Tree"],
        pip_requirements=[
            f"{n}=={version(n)}" for n in ("mlflow", "scikit-learn", "skops", "numpy", "scipy", "pandas")
        ],
    )
    importance = dict(
        sorted(zip(FEATURES, map(float, forest.feature_importances_), strict=True), key=lambda i: i[1], reverse=True)
    )
    mlflow.log_dict(importance, "feature_importance.json")
    chart = figure()
    axes = chart.subplots()
    names = list(importance)[::-1]
    axes.barh(names, [importance[n] for n in names], color="#4c72b0")
    axes.set_xlabel("importance (mean decrease in impurity)")
    axes.set_title("Feature importance")
    log_bytes(png(chart), "feature_importance.png")

    # model_quality_gate
    accuracy = float(accuracy_score(y_test, forest.predict(X_test)))
    record_check("quality_gate", accuracy >= 0.85, accuracy=accuracy, min_accuracy=0.85)

    # metrics
    predicted = forest.predict(X_test)
    precision, recall, f1, _ = precision_recall_fscore_support(y_test, predicted, average="macro", zero_division=0)
    scores = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "precision": float(precision),
        "recall": float(recall),
        "f1_score": float(f1),
    }
    labels = [0, 1, 2]
    matrix = confusion_matrix(y_test, predicted, labels=labels).tolist()
    report = classification_report(y_test, predicted, labels=labels, target_names=SPECIES, zero_division=0)
    mlflow.log_metrics(scores)
    mlflow.set_tags({"metrics_average": "macro"})
    mlflow.log_dict({"labels": SPECIES, "matrix": matrix}, "confusion_matrix.json")
    mlflow.log_text(report, "classification_report.txt")
    picture = figure()
    axes = picture.subplots()
    ConfusionMatrixDisplay.from_predictions(
        y_test, predicted, labels=labels, display_labels=SPECIES, ax=axes, colorbar=False
    )
    axes.set_title("Confusion matrix (test split)")
    log_bytes(png(picture), "confusion_matrix.png")

    # onnx_model
    import mlflow.onnx as mlflow_onnx
    import onnx
    from skl2onnx import to_onnx

    onnx_bytes = to_onnx(
        forest, np.zeros((1, X_test.shape[1]), dtype=np.float32), options={id(forest): {"zipmap": False}}
    ).SerializeToString()
    mismatches, difference = parity(forest, onnx_bytes, X_test)
    if mismatches or difference > 1e-5:
        sys.exit(f"ONNX parity failed: {mismatches} labels, {difference}")
    log_bytes(onnx_bytes, "onnx_model/iris_random_forest.onnx")
    onnx_info = mlflow_onnx.log_model(
        onnx.load_from_string(onnx_bytes),
        name="onnx",
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=[f"{n}=={version(n)}" for n in ("mlflow", "onnx", "onnxruntime", "numpy", "pandas")],
    )

    # onnx_model_parity (the graph's check computes parity again)
    mismatches, difference = parity(forest, onnx_bytes, X_test)
    record_check(
        "onnx_parity",
        mismatches == 0 and difference <= 1e-5,
        label_mismatches=mismatches,
        max_probability_difference=difference,
    )

    # registered_model
    sk_model = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = 'model'"
    )[0]
    if not client.search_registered_models(filter_string=f"name = '{REGISTERED_MODEL}'"):
        client.create_registered_model(REGISTERED_MODEL)
    mine = client.create_model_version(
        REGISTERED_MODEL,
        source=f"models:/{sk_model.model_id}",
        run_id=run_id,
        tags={
            "accuracy": str(scores["accuracy"]),
            "f1_score": str(scores["f1_score"]),
            "onnx_artifact_uri": f"runs:/{run_id}/onnx_model/iris_random_forest.onnx",
            "onnx_model_uri": f"models:/{onnx_info.model_id}",
        },
        model_id=sk_model.model_id,
    )
    champion = promote(client, mine)
    mlflow.set_tags(
        {"registered_model": f"{REGISTERED_MODEL}/{mine.version}", "promoted": champion == str(mine.version)}
    )
    mlflow.end_run("FINISHED")
    return run_id


if __name__ == "__main__":
    print(json.dumps({"mlflow_run_id": main()}))
