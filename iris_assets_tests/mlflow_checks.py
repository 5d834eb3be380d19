"""Assertions about what an MLflow store holds, read back through MLflow's own API."""

import json
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from iris_assets.data.schema import FEATURES
from iris_assets.packaging.onnx import onnx_artifact
from iris_assets.settings import DEFAULT_EXPERIMENT
from iris_assets.training.families import DEFAULT_FAMILY, FAMILIES
from iris_assets.training.importance import ARTIFACT_NAMES


def expected_artifacts(family: str = DEFAULT_FAMILY) -> set[str]:
    """A run's artifacts: the evaluation's, the family's per-feature measure (JSON and plot) and its ONNX file."""
    measure = ARTIFACT_NAMES[FAMILIES[family].importance]
    return {
        "classification_report.txt",
        "confusion_matrix.json",
        "confusion_matrix.png",
        f"{measure}.json",
        f"{measure}.png",
        onnx_artifact(family),
    }


# The forest's run: where the original pipeline put its artifacts, plus the two plots.
EXPECTED_ARTIFACTS = expected_artifacts()
assert EXPECTED_ARTIFACTS == {
    "classification_report.txt",
    "confusion_matrix.json",
    "confusion_matrix.png",
    "feature_importance.json",
    "feature_importance.png",
    "onnx_model/iris_random_forest.onnx",
}


def runs_of(tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT, deleted: bool = False):
    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    from mlflow.entities import ViewType

    view = ViewType.ALL if deleted else ViewType.ACTIVE_ONLY
    return client.search_runs([found.experiment_id], run_view_type=view, max_results=1000)


def only_run(tracking_uri: str, experiment: str = DEFAULT_EXPERIMENT):
    runs = runs_of(tracking_uri, experiment)
    assert len(runs) == 1, [(r.info.run_id, r.info.status, r.data.tags) for r in runs]
    return runs[0]


def artifact_paths(tracking_uri: str, run_id: str, path: str | None = None) -> list[str]:
    client = MlflowClient(tracking_uri)
    paths = []
    for item in client.list_artifacts(run_id, path):
        paths.extend(artifact_paths(tracking_uri, run_id, item.path) if item.is_dir else [item.path])
    return paths


def assert_complete_iris_run(tracking_uri: str, run, *, n_estimators=100, max_depth=10, test_rows=30):
    """One finished run holding everything the original Airflow DAG logged."""
    import numpy as np
    import onnxruntime as ort
    from sklearn.datasets import load_iris

    client = MlflowClient(tracking_uri)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED", run.info.status
    assert run.info.end_time is not None
    params = run.data.params
    assert params["n_estimators"] == str(n_estimators)
    assert params["max_depth"] == str(max_depth)
    assert params["random_state"] == "42"
    # splits logs these through MLflow's fluent API (mlflow.log_params): the bound run holds them too
    assert {"test_size", "split_random_state"} <= set(params) and params["stratified"] == "True", params
    metrics = run.data.metrics
    assert set(metrics) >= {"accuracy", "precision", "recall", "f1_score"}
    for name in ("accuracy", "precision", "recall", "f1_score"):
        assert 0.8 <= metrics[name] <= 1.0, (name, metrics[name])

    # The root artifacts and the ONNX file exactly where the original put them, once each.
    paths = artifact_paths(tracking_uri, run_id)
    assert sorted(paths) == sorted(EXPECTED_ARTIFACTS), paths

    local = Path(client.download_artifacts(run_id, "", dst_path=None))
    confusion = json.loads((local / "confusion_matrix.json").read_text())
    assert confusion["labels"] == ["setosa", "versicolor", "virginica"]
    assert sum(map(sum, confusion["matrix"])) == test_rows
    importance = json.loads((local / "feature_importance.json").read_text())
    assert set(importance) == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    assert abs(sum(importance.values()) - 1.0) < 1e-6
    report = (local / "classification_report.txt").read_text()
    assert "setosa" in report and "macro avg" in report

    # The model: one logged model named "model", loadable both ways, agreeing with ONNX.
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = 'model'",
    )
    assert len(models) == 1, [m.model_id for m in models]
    mlflow.set_tracking_uri(tracking_uri)
    features = load_iris().data
    sk_model = mlflow.sklearn.load_model(f"runs:/{run_id}/model")
    assert sk_model.n_estimators == n_estimators
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    import pandas as pd

    frame = pd.DataFrame(features, columns=FEATURES)
    assert list(pyfunc.predict(frame)) == list(sk_model.predict(frame))
    session = ort.InferenceSession(
        (local / "onnx_model/iris_random_forest.onnx").read_bytes(),
        providers=["CPUExecutionProvider"],
    )
    labels = session.run(None, {session.get_inputs()[0].name: features.astype(np.float32)})[0]
    assert list(labels) == list(sk_model.predict(frame))
    return run
