"""The baseline: the whole Iris graph's work as one plain Python script, no Dagster.

Same data, split, forest, metrics, plots, artifacts, dataset inputs, asset-check
numbers, ONNX conversion with its parity check, model registration and champion
promotion (the champion scored on the same split), and the same MLflow logging calls, with MLflow's plain fluent API in one
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
REGISTERED_MODEL = os.environ.get("IRIS_REGISTERED_MODEL", "iris-classifier")
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


def onnx_outputs(onnx_bytes: bytes, X) -> tuple[list[str], list[str], "object"]:
    """(labels, class names, probabilities by class) of the zipmap='columns' ONNX model."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(None, {"X": np.asarray(X, dtype=np.float32)}), strict=True))
    classes = [n for n in names if n != "species"]
    return list(values["species"]), classes, np.column_stack([values[c] for c in classes])


def parity(forest, onnx_bytes: bytes, X, tolerance: float) -> tuple[int, float]:
    import numpy as np

    labels, classes, probabilities = onnx_outputs(onnx_bytes, X)
    sk = forest.predict_proba(X)
    columns = [classes.index(c) for c in forest.classes_]
    top_two = np.sort(sk, axis=1)[:, -2:]
    near_tie = top_two[:, 1] - top_two[:, 0] <= tolerance
    differ = np.asarray(labels) != forest.predict(X)
    return int((differ & ~near_tie).sum()), float(np.abs(probabilities[:, columns] - sk).max())


def promote(client: MlflowClient, mine, scores: dict, X_test, y_test, digest: str) -> bool:
    """Compare with the champion on the same rows, decide, record (as registry.promotion.promote)."""
    from mlflow.exceptions import MlflowException
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    version = str(mine.version)
    try:
        current = str(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version)
    except MlflowException:
        current = None
    champion_scores = None
    if current is None:
        promoted, reason = True, "no champion yet"
    else:
        predicted = mlflow.sklearn.load_model(f"models:/{REGISTERED_MODEL}/{current}").predict(X_test)
        p, r, f, _ = precision_recall_fscore_support(y_test, predicted, average="macro", zero_division=0)
        champion_scores = {
            "accuracy": float(accuracy_score(y_test, predicted)),
            "precision": p,
            "recall": r,
            "f1_score": f,
        }
        key = ("accuracy", "f1_score")
        promoted = tuple(scores[k] for k in key) > tuple(champion_scores[k] for k in key)
        reason = f"accuracy {scores['accuracy']:.4f} vs champion v{current} {champion_scores['accuracy']:.4f}"
    if promoted:
        client.set_registered_model_alias(REGISTERED_MODEL, "champion", version)
        if current is not None:
            client.set_model_version_tag(REGISTERED_MODEL, current, "superseded_by", f"v{version}")
    else:
        client.set_registered_model_alias(REGISTERED_MODEL, "challenger", version)
        client.set_model_version_tag(REGISTERED_MODEL, version, "not_promoted_reason", reason)
    tags = {
        "promotion": "promoted" if promoted else "not promoted",
        "compared_with": f"v{current}" if current else "none",
        "promotion_rule": "higher accuracy, then f1_score",
        "evaluation_rows": len(X_test),
        "evaluation_digest": digest,
        **{f"candidate.{k}": f"{v:.6f}" for k, v in scores.items()},
        **{f"champion.{k}": f"{v:.6f}" for k, v in (champion_scores or {}).items()},
    }
    for key, value in tags.items():
        client.set_model_version_tag(REGISTERED_MODEL, version, key, str(value))
    client.update_model_version(REGISTERED_MODEL, version, description=f"v{version}: {reason}")
    if champion_scores:
        mlflow.log_metrics({f"champion.{k}": float(v) for k, v in champion_scores.items()})
    return promoted


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
        frame[FEATURES], frame["species"], test_size=0.2, random_state=42, stratify=frame["species"]
    )
    mlflow.log_params({"test_size": 0.2, "split_random_state": 42, "stratified": True})
    digests = {}
    for part, context, X, y in (("train", "training", X_train, y_train), ("test", "evaluation", X_test, y_test)):
        dataset = mlflow.data.from_pandas(X.assign(species=y), source=source, name=f"iris_{part}", targets="species")
        mlflow.log_input(dataset, context=context)
        digests[context] = dataset.digest

    # model
    forest = RandomForestClassifier(n_estimators=100, max_depth=10, random_state=42)
    forest.fit(X_train, y_train)
    mlflow.log_params({"family": "random_forest", "n_estimators": 100, "max_depth": 10, "random_state": 42})
    mlflow.set_tags({"model_family": "random_forest"})
    example = X_train.head(5)
    mlflow.sklearn.log_model(
        forest,
        name="model",
        signature=infer_signature(example, pd.Series(forest.predict(example), name="species")),
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
    matrix = confusion_matrix(y_test, predicted, labels=SPECIES).tolist()
    report = classification_report(y_test, predicted, labels=SPECIES, zero_division=0)
    mlflow.log_metrics(scores)
    mlflow.set_tags({"metrics_average": "macro"})
    mlflow.log_dict({"labels": SPECIES, "matrix": matrix}, "confusion_matrix.json")
    mlflow.log_text(report, "classification_report.txt")
    picture = figure()
    axes = picture.subplots()
    ConfusionMatrixDisplay.from_predictions(y_test, predicted, labels=SPECIES, ax=axes, colorbar=False)
    axes.set_title("Confusion matrix (test split)")
    log_bytes(png(picture), "confusion_matrix.png")

    # onnx_model
    import mlflow.onnx as mlflow_onnx
    import onnx
    from skl2onnx import to_onnx

    converted = to_onnx(
        forest, np.zeros((1, X_test.shape[1]), dtype=np.float32), options={id(forest): {"zipmap": "columns"}}
    )
    renamed = {"output_label": "species", **{f"s{c}": c for c in forest.classes_}}
    for node in converted.graph.node:
        node.output[:] = [renamed.get(n, n) for n in node.output]
    for value in [*converted.graph.output, *converted.graph.value_info]:
        value.name = renamed.get(value.name, value.name)
    onnx_bytes = converted.SerializeToString()
    tolerance = 1e-5 * max(1.0, len(forest.estimators_) / 100)
    mismatches, difference = parity(forest, onnx_bytes, X_test, tolerance)
    if mismatches or difference > tolerance:
        sys.exit(f"ONNX parity failed: {mismatches} labels, {difference}")
    log_bytes(onnx_bytes, "onnx_model/iris_random_forest.onnx")
    onnx_example = X_test.head(5)
    labels, classes, probabilities = onnx_outputs(onnx_bytes, onnx_example)
    onnx_answer = pd.DataFrame({"species": labels, **dict(zip(classes, probabilities.T, strict=True))})
    onnx_info = mlflow_onnx.log_model(
        onnx.load_from_string(onnx_bytes),
        name="onnx",
        signature=infer_signature(onnx_example, onnx_answer),
        input_example=onnx_example,
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=[f"{n}=={version(n)}" for n in ("mlflow", "onnx", "onnxruntime", "numpy", "pandas")],
    )

    # the parity check (the graph records the parity it measured above)
    record_check(
        "onnx_parity",
        mismatches == 0 and difference <= tolerance,
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
            "family": "random_forest",
        },
        model_id=sk_model.model_id,
    )
    promoted = promote(client, mine, scores, X_test, y_test, digests["evaluation"])
    mlflow.set_tags({"registered_model": f"{REGISTERED_MODEL}/{mine.version}", "promoted": promoted})
    mlflow.end_run("FINISHED")
    return run_id


def _project_heap_module():
    """``iris_assets/execution/heap.py`` loaded by path: importing it as a package module would
    import ``iris_assets`` (so Dagster), the cost this baseline must not pay."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "iris_assets" / "execution" / "heap.py"
    spec = importlib.util.spec_from_file_location("iris_heap", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    # --gc-freeze: the same garbage-collection setting a Dagster run gets (execution.heap),
    # for the benchmark's like-for-like row.
    if "--gc-freeze" in sys.argv[1:]:
        with _project_heap_module().frozen_survivors():
            print(json.dumps({"mlflow_run_id": main()}))
    else:
        print(json.dumps({"mlflow_run_id": main()}))
