"""Registry aliases, dataset lineage, plots and the ONNX prediction path, on real stores."""

import json
import multiprocessing
import os
import struct
import subprocess

import dagster as dg
import pytest

from iris_assets.data.schema import FEATURES, SPECIES, load_bundled_iris
from iris_assets.evaluation.scoring import scores
from iris_assets.registry.promotion import (
    CHALLENGER,
    CHAMPION,
    COMPARED_WITH_TAG,
    NOT_PROMOTED_TAG,
    PROMOTION_TAG,
    Evaluation,
    PromotionRule,
    promote,
)
from iris_assets.serving import IrisOnnxPredictor, PredictionError
from iris_assets.serving.cli import parse_rows
from iris_assets_tests.module_store import module_store
from iris_harness.environment import BIN, QUIET_ENV
from iris_harness.runs import iris_pipeline

MODEL = "iris-classifier"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Two pipeline runs: the defaults, then a deliberately weak forest (gate lowered)."""
    with module_store(tmp_path_factory, "registry") as (home, uri, instance):
        strong = dg.execute_job(dg.reconstructable(iris_pipeline), instance=instance)
        weak = dg.execute_job(
            dg.reconstructable(iris_pipeline),
            instance=instance,
            run_config={
                "ops": {
                    "model": {"config": {"n_estimators": 1, "max_depth": 1, "min_accuracy": 0.3}},
                }
            },
        )
        assert strong.success and weak.success
        yield {"uri": uri, "instance": instance, "strong": strong, "weak": weak, "home": home}


def _client(registry):
    from mlflow import MlflowClient

    return MlflowClient(registry["uri"])


def _version_of(registry, dagster_run_id):
    (version,) = [
        v
        for v in _client(registry).search_model_versions(f"name = '{MODEL}'")
        if v.tags.get("dagster_run_id") == dagster_run_id
    ]
    return version


def test_better_model_is_champion_weaker_is_challenger_with_reason(registry):
    client = _client(registry)
    strong = _version_of(registry, registry["strong"].run_id)
    weak = _version_of(registry, registry["weak"].run_id)
    assert float(weak.tags["accuracy"]) < float(strong.tags["accuracy"])
    assert client.get_model_version_by_alias(MODEL, CHAMPION).version == strong.version
    assert client.get_model_version_by_alias(MODEL, CHALLENGER).version == weak.version
    weak_version = client.get_model_version(MODEL, weak.version)
    reason = weak_version.tags[NOT_PROMOTED_TAG]
    # Compared on the same data: the weak run's evaluation split, where the champion also scored.
    assert f"vs champion v{strong.version}" in reason and "on the same 30 rows" in reason, reason
    assert weak_version.tags[COMPARED_WITH_TAG] == f"v{strong.version}"
    assert float(weak_version.tags["champion.accuracy"]) > float(weak_version.tags["candidate.accuracy"])
    assert weak_version.description.startswith(f"v{weak.version} not promoted: ")
    weak_run = client.get_run(weak.run_id)
    assert weak_run.data.metrics["champion.accuracy"] == float(weak_version.tags["champion.accuracy"])
    assert weak_run.data.tags["promoted"] == "False"
    # Both versions point at their own run's model, and link the ONNX model.
    for version, result in ((strong, registry["strong"]), (weak, registry["weak"])):
        assert version.tags["onnx_artifact_uri"].endswith("/onnx_model/iris_random_forest.onnx")
        assert version.tags["onnx_model_uri"].startswith("models:/m-")
        run = client.get_run(version.run_id)
        assert run.data.tags["dagster_run_id"] == result.run_id
        assert run.data.tags["registered_model"] == f"{MODEL}/{version.version}"


def test_champion_loads_through_pyfunc_and_agrees_with_onnx(registry):
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(registry["uri"])
    table = load_bundled_iris().frame
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}@{CHAMPION}")
    pyfunc_species = list(pyfunc.predict(pd.DataFrame(table[FEATURES])))  # names, not class numbers
    onnx = IrisOnnxPredictor.load(f"models:/{MODEL}@{CHAMPION}", registry["uri"])
    onnx_species = onnx.predict(table[FEATURES].to_numpy()).species
    assert pyfunc_species == onnx_species
    assert set(pyfunc_species) == set(SPECIES)
    # The onnx flavour's logged model loads as well.
    onnx_uri = _client(registry).get_model_version_by_alias(MODEL, CHAMPION).tags["onnx_model_uri"]
    assert mlflow.onnx.load_model(onnx_uri).graph.node


def _concurrent_promote(uri, name, version, barrier):
    """What the registered_model asset does, from a process of its own."""
    import mlflow

    from iris_assets.tracking.store import mlflow_client

    client = mlflow_client(uri)
    mlflow.set_tracking_uri(uri)
    model = mlflow.sklearn.load_model(f"models:/{name}/{version}")
    splits = _default_test_split()
    barrier.wait()
    promote(
        client,
        uri,
        name,
        version,
        classes=list(model.classes_),
        candidate_scores=scores(splits.y, model.predict(splits.X)),
        evaluation=splits,
        load_model=mlflow.sklearn.load_model,
        rule=PromotionRule(),
    )


def _default_test_split() -> Evaluation:
    from sklearn.model_selection import train_test_split

    frame = load_bundled_iris().frame
    _, X, _, y = train_test_split(
        frame[FEATURES], frame["species"], test_size=0.2, random_state=42, stratify=frame["species"]
    )
    return Evaluation(X, y, "default-test-split")


def test_concurrent_promotions_are_decided_one_after_the_other(registry):
    """Two equal candidates that both beat the champion decide at the same moment, five times:
    the first takes champion, the second is compared with it (a tie) and is not promoted."""
    import mlflow

    # create_model_version looks a models:/m-... source up through MLflow's process-wide tracking URI
    # (registration.register_model sets it the same way); it is not left over from another test.
    mlflow.set_tracking_uri(registry["uri"])
    client = _client(registry)
    strong = _version_of(registry, registry["strong"].run_id)
    weak = _version_of(registry, registry["weak"].run_id)
    name = "race"
    client.create_registered_model(name)
    context = multiprocessing.get_context("spawn")
    for round_ in range(5):
        champion = client.create_model_version(name, weak.source, run_id=weak.run_id).version
        client.set_registered_model_alias(name, CHAMPION, champion)
        first, second = [client.create_model_version(name, strong.source, run_id=strong.run_id).version for _ in "ab"]
        barrier = context.Barrier(2)
        workers = [
            context.Process(target=_concurrent_promote, args=(registry["uri"], name, v, barrier))
            for v in (first, second)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(180)
            assert worker.exitcode == 0
        decided = {v: client.get_model_version(name, v).tags for v in (first, second)}
        promoted = [v for v, tags in decided.items() if tags[PROMOTION_TAG] == "promoted"]
        assert len(promoted) == 1, (round_, decided)
        (winner,) = promoted
        (loser,) = {first, second} - {winner}
        assert decided[winner][COMPARED_WITH_TAG] == f"v{champion}"
        assert decided[loser][COMPARED_WITH_TAG] == f"v{winner}", (round_, decided)
        assert "a tie keeps the champion" in decided[loser][NOT_PROMOTED_TAG]
        assert client.get_model_version_by_alias(name, CHAMPION).version == winner
    assert len(client.search_model_versions(f"name = '{name}'")) == 3 * 5  # no version lost


def test_plots_are_png_images_of_a_sensible_size(registry):
    client = _client(registry)
    run_id = _version_of(registry, registry["strong"].run_id).run_id
    for name in ("confusion_matrix.png", "feature_importance.png"):
        data = open(client.download_artifacts(run_id, name), "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert 200 <= width <= 2000 and 200 <= height <= 2000, (name, width, height)
    metadata = registry["instance"].get_latest_materialization_event(dg.AssetKey("metrics"))
    image = metadata.asset_materialization.metadata["confusion_matrix_image"].value
    assert image.startswith("![confusion matrix](data:image/png;base64,")


def test_logged_inputs_carry_content_digests(registry):
    from mlflow.data import from_pandas

    client = _client(registry)
    table = load_bundled_iris()
    expected_raw = from_pandas(table.frame, source=table.source, name="iris_raw", targets="target").digest
    digests = {}
    for result in (registry["strong"], registry["weak"]):
        run = client.get_run(_version_of(registry, result.run_id).run_id)
        inputs = {
            d.dataset.name: (d.dataset.digest, [t.value for t in d.tags if t.key == "mlflow.data.context"])
            for d in run.inputs.dataset_inputs
        }
        assert inputs["iris_raw"] == (expected_raw, ["raw"])
        assert inputs["iris_train"][1] == ["training"]
        assert inputs["iris_test"][1] == ["evaluation"]
        digests[result.run_id] = inputs
    # Unchanged input, unchanged digests (the two runs split the same table the same way).
    first, second = digests.values()
    assert first == second
    splits = registry["instance"].get_latest_materialization_event(dg.AssetKey("splits"))
    assert splits.asset_materialization.metadata["test_digest"].value == first["iris_test"][0]


# -- iris-predict --------------------------------------------------------------------------------


def _predict(registry, *args, stdin=None):
    return subprocess.run(
        [str(BIN / "iris-predict"), "--tracking-uri", registry["uri"], *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **QUIET_ENV},
    )


def test_predict_csv_file_with_the_champion(registry, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    result = _predict(registry, "--model", f"models:/{MODEL}@champion", str(rows))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "species,setosa,versicolor,virginica"
    assert [line.split(",")[0] for line in lines[1:]] == ["setosa", "virginica"]
    for line in lines[1:]:
        assert sum(map(float, line.split(",")[1:])) == pytest.approx(1.0, abs=1e-3)
    assert result.stderr == ""


def test_predict_json_from_stdin_with_a_run(registry):
    run_id = _version_of(registry, registry["strong"].run_id).run_id
    stdin = json.dumps([{"sepal_length": 5.9, "sepal_width": 3.0, "petal_length": 4.2, "petal_width": 1.5}])
    result = _predict(registry, "--model", f"runs:/{run_id}", "--json", "-", stdin=stdin)
    assert result.returncode == 0, result.stderr
    (prediction,) = json.loads(result.stdout)
    assert prediction["species"] == "versicolor"
    assert set(prediction["probabilities"]) == {"setosa", "versicolor", "virginica"}


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        ([], "[[5.1, 3.5, 1.4]]", "row 1: has 3 values, expected 4"),
        ([], "5.1,3.5,1.4,0.2,9\n", "row 1: has 5 values, expected 4"),
        ([], '[[5.1, 3.5, "wide", 0.2]]', "row 1: petal_length = 'wide' is not a number"),
        ([], "5.1,3.5,,0.2\n", "row 1: petal_length is missing"),
        ([], "[[5.1, 3.5, null, 0.2]]", "row 1: petal_length is missing"),
        ([], "[[5.1, 3.5, NaN, 0.2]]", "row 1: petal_length = nan is not a finite number"),
        (["--model", "models:/no-such-model@champion"], "[[5.1, 3.5, 1.4, 0.2]]", "no-such-model"),
        (["--model", f"models:/{MODEL}@no-such-alias"], "[[5.1, 3.5, 1.4, 0.2]]", "no-such-alias"),
        (["--model", "runs:/0123456789abcdef"], "[[5.1, 3.5, 1.4, 0.2]]", "runs:/0123456789abcdef"),
        (["--model", "missing.onnx"], "[[5.1, 3.5, 1.4, 0.2]]", "'missing.onnx': no such file"),
        ([], "5.1,3.5," + "1" * 200_000 + ",0.2\n", "input is not valid CSV (field larger than field limit"),
        ([], "[[" + "9" * 5000 + ", 3.5, 1.4, 0.2]]", "input is not valid JSON (Exceeds the limit (4300 digits)"),
        ([], "[[1e39, 3.5, 1.4, 0.2]]", "row 1: sepal_length = 1e+39 is outside the float32 range"),
        ([], '"abc"', "JSON input must be a list of rows, not a str"),
        (
            ["--tracking-uri", "garbage://x"],
            "[[5.1, 3.5, 1.4, 0.2]]",
            "got unsupported URI 'garbage://x'",
        ),
        ([], "1" * (17 * 1024 * 1024), "input is larger than 16,777,216 bytes"),
    ],
    ids=[
        "3 columns",
        "5 columns",
        "non-numeric",
        "empty cell",
        "null",
        "NaN",
        "unknown model",
        "unknown alias",
        "unknown run",
        "missing file",
        "field over 128 KiB",
        "5000-digit number",
        "beyond float32",
        "a JSON string",
        "garbage tracking URI",
        "over the input limit",
    ],
)
def test_predict_bad_input_is_a_clear_error(registry, args, stdin, message):
    result = _predict(registry, *args, "-", stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_parse_rows_accepts_both_formats():
    assert parse_rows("5.1,3.5,1.4,0.2\n") == [[5.1, 3.5, 1.4, 0.2]]
    assert parse_rows("petal_width,petal_length,sepal_width,sepal_length\n0.2,1.4,3.5,5.1\n") == [[5.1, 3.5, 1.4, 0.2]]
    assert parse_rows('{"sepal_length": 1, "sepal_width": 2, "petal_length": 3, "petal_width": 4}') == [
        [1.0, 2.0, 3.0, 4.0]
    ]
    with pytest.raises(PredictionError, match="no rows"):
        parse_rows("[]")


def test_onnx_session_is_created_once(tmp_path, registry):
    predictor = IrisOnnxPredictor.load(f"models:/{MODEL}@champion", registry["uri"])
    session = predictor._session
    for _ in range(3):
        predictor.predict([[5.1, 3.5, 1.4, 0.2]])
    assert predictor._session is session
