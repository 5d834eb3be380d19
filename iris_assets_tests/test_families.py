"""Model families: each non-default family once through the whole pipeline, its config refused when it
mixes families, and every family competing for one champion.

One module, so its pipeline runs share one xdist worker; small hyperparameters keep them fast.
"""

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from pydantic import ValidationError
from sklearn.datasets import load_iris

from iris_assets.data.schema import FEATURES, SPECIES
from iris_assets.serving import cli
from iris_assets.settings import DEFAULT_REGISTERED_MODEL
from iris_assets.training.assets import FAMILY_TAG, HYPERPARAMETER_FIELDS, ModelConfig
from iris_assets.training.families import FAMILIES, family_of
from iris_assets_tests.mlflow_checks import artifact_paths, expected_artifacts, only_run, runs_of
from iris_harness.runs import iris_pipeline

# Each family with hyperparameters that keep its run short (and still pass the quality gate).
SMALL = {
    "svm": {"C": 10.0},
    "logistic_regression": {"C": 10.0},
    "mlp": {"hidden_layer_sizes": [16], "max_iter": 2000},
    "hist_gradient_boosting": {"max_iter": 30},
}


def _pipeline(instance, model_config: dict) -> None:
    result = dg.execute_job(
        dg.reconstructable(iris_pipeline), instance=instance, run_config={"ops": {"model": {"config": model_config}}}
    )
    assert result.success


@pytest.mark.parametrize("family", sorted(SMALL))
def test_a_family_end_to_end(instance, tracking_uri, family, capsys, tmp_path):
    _pipeline(instance, {"family": family, **SMALL[family]})
    run = only_run(tracking_uri)
    assert run.info.status == "FINISHED"
    # The family, as a param and a tag, with its own (resolved) hyperparameters and nobody else's.
    assert run.data.params["family"] == run.data.tags[FAMILY_TAG] == family
    assert set(run.data.params) & HYPERPARAMETER_FIELDS == set(FAMILIES[family].hyperparameters)
    assert all(0.8 <= run.data.metrics[m] <= 1.0 for m in ("accuracy", "precision", "recall", "f1_score"))
    # Its own per-feature measure (no forest's impurity importance), its ONNX file, checked for parity.
    assert sorted(artifact_paths(tracking_uri, run.info.run_id)) == sorted(expected_artifacts(family))
    assert run.data.tags["check.onnx_parity"] == "passed"
    assert run.data.metrics["check.onnx_parity.label_mismatches"] == 0

    # Registered (first version: champion), named by its family in its tags and description.
    client = MlflowClient(tracking_uri)
    version = client.get_model_version_by_alias(DEFAULT_REGISTERED_MODEL, "champion")
    assert version.tags["family"] == family
    assert version.description == f"v{version.version} promoted to champion: no champion yet; family {family}"

    # pyfunc (what `mlflow models serve` runs) answers species names; so does iris-predict, by ONNX.
    mlflow.set_tracking_uri(tracking_uri)
    features = load_iris().data
    frame = pd.DataFrame(features, columns=FEATURES)
    sk_model = mlflow.sklearn.load_model(f"models:/{DEFAULT_REGISTERED_MODEL}@champion")
    assert family_of(sk_model).name == family
    answers = list(mlflow.pyfunc.load_model(f"models:/{DEFAULT_REGISTERED_MODEL}@champion").predict(frame))
    assert set(answers) == set(SPECIES) and answers == list(sk_model.predict(frame))
    capsys.readouterr()
    rows_file = tmp_path / "rows.csv"
    rows_file.write_text("".join(",".join(map(str, row)) + "\n" for row in features[[0, 75, 149]]))
    assert cli.main(["--model", f"models:/{DEFAULT_REGISTERED_MODEL}@champion", str(rows_file)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "species,setosa,versicolor,virginica"
    assert [line.split(",")[0] for line in lines[1:]] == list(sk_model.predict(frame.iloc[[0, 75, 149]]))
    probabilities = np.array([[float(p) for p in line.split(",")[1:]] for line in lines[1:]])
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)


def test_families_compete_for_one_champion_on_the_same_rows(instance, tracking_uri):
    """A family is just another candidate: same registered model, same evaluation rows, same rule."""
    _pipeline(instance, {})  # the default forest: v1, champion
    _pipeline(instance, {"family": "logistic_regression"})
    forest, linear = sorted(runs_of(tracking_uri), key=lambda r: r.info.start_time)
    assert forest.data.params["family"] == "random_forest" and linear.data.params["family"] == "logistic_regression"
    assert linear.data.tags["evaluation_digest"] == forest.data.tags["evaluation_digest"]
    version = MlflowClient(tracking_uri).get_model_version(DEFAULT_REGISTERED_MODEL, "2")
    assert version.tags["family"] == "logistic_regression"
    assert version.tags["compared_with"] == "v1"
    assert "on the same 30 rows" in version.description


def test_another_family_s_parameter_is_refused_naming_the_family_s_own(instance, tracking_uri):
    with pytest.raises(ValidationError) as refused:
        ModelConfig(family="svm", n_estimators=5)
    assert "family svm takes only C, kernel, gamma; n_estimators belongs to random_forest" in str(refused.value)
    # Through a run: refused before its first step with that one message; no step runs, no MLflow run.
    result = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        run_config={"ops": {"model": {"config": {"family": "logistic_regression", "max_depth": 3}}}},
        raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    message = failure.event_specific_data.error.message
    assert "model: family logistic_regression takes only C, max_iter; max_depth belongs to random_forest, " in message
    assert "hist_gradient_boosting" in message
    assert runs_of(tracking_uri) == []


def test_the_flat_config_still_means_a_forest():
    config = ModelConfig(n_estimators=10)
    assert config.family == "random_forest"
    assert config.hyperparameters() == {"n_estimators": 10, "max_depth": 10, "random_state": 42}
    assert type(config.build()).__name__ == "RandomForestClassifier"
    # Scaled inputs for the families that need them, none for the tree ensembles.
    for name, family in FAMILIES.items():
        model = ModelConfig(family=name).build()
        assert [step for step, _ in getattr(model, "steps", [])] == (["scale", name] if family.scaled else [])


def test_iris_random_forest_users_keep_their_name_or_move_as_documented(instance, tracking_uri, monkeypatch, tmp_path):
    """IRIS_REGISTERED_MODEL=iris-random-forest keeps the former name; the migration in
    docs/registry-and-serving.md copies it to iris-classifier, champion included, and iris-predict's
    default follows the setting."""
    from iris_assets import settings
    from iris_harness.environment import REPO_ROOT

    old = "iris-random-forest"
    monkeypatch.setenv("IRIS_REGISTERED_MODEL", old)
    _pipeline(instance, {"n_estimators": 10})
    client = MlflowClient(tracking_uri)
    assert client.get_model_version_by_alias(old, "champion").tags["family"] == "random_forest"
    rows = tmp_path / "rows.csv"
    rows.write_text("5.1,3.5,1.4,0.2\n")
    assert cli.main([str(rows)]) == 0  # the champion of $IRIS_REGISTERED_MODEL

    page = (REPO_ROOT / "docs" / "registry-and-serving.md").read_text()
    migration = page.split("## Moving from iris-random-forest", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile("\n".join(line.removeprefix("  ") for line in migration.splitlines()), "migration", "exec"), {})
    monkeypatch.delenv("IRIS_REGISTERED_MODEL")
    assert settings.current().registered_model == DEFAULT_REGISTERED_MODEL == "iris-classifier"
    moved = client.get_model_version_by_alias(DEFAULT_REGISTERED_MODEL, "champion")
    assert (
        str(moved.version) == "1"
        and moved.tags["family"] == "random_forest"
        and moved.description.endswith("; family random_forest")
    )
    assert cli.main([str(rows)]) == 0  # now the champion of iris-classifier


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_trusts_exactly_the_types_skops_reports(family):
    """MLflow stores models with skops, which loads only trusted types: each family lists what
    skops.io.get_untrusted_types finds in its fitted model, nothing more."""
    import skops.io

    data = load_iris()
    model = ModelConfig(family=family, **SMALL.get(family, {"n_estimators": 5})).build()
    model.fit(data.data, np.array(SPECIES)[data.target])
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    assert sorted(untrusted) == sorted(FAMILIES[family].skops_trusted_types)
