"""A fair champion: candidates and the champion compared on the same data, under a documented rule.

Real pipeline runs on one embedded store, in order: a weak first champion, a better
model that replaces it, an equal one that does not, a model that knows two species,
and models trained on small landing files.
"""

import os
import subprocess

import dagster as dg
import pytest
from mlflow import MlflowClient

from iris_assets.data.schema import CSV_COLUMNS, FEATURES, SPECIES, load_bundled_iris
from iris_assets.registry.promotion import (
    CHAMPION,
    COMPARED_WITH_TAG,
    NOT_PROMOTED_TAG,
    PROMOTION_TAG,
    PromotionRule,
    decide,
)
from iris_assets_tests.module_store import module_store
from iris_harness.environment import BIN, QUIET_ENV
from iris_harness.runs import iris_pipeline

MODEL = "iris-classifier"
WEAK = {"model": {"config": {"n_estimators": 1, "max_depth": 1, "min_accuracy": 0.3}}}


# -- the rule itself --------------------------------------------------------------------------------


def _scores(accuracy, f1):
    return {"accuracy": accuracy, "precision": 0.0, "recall": 0.0, "f1_score": f1}


@pytest.mark.parametrize(
    ("rule", "candidate", "champion", "promoted", "said"),
    [
        (PromotionRule(), _scores(0.95, 0.9), _scores(0.90, 0.95), True, "accuracy 0.9500 vs champion 0.9000"),
        (PromotionRule(), _scores(0.85, 0.99), _scores(0.90, 0.50), False, "accuracy 0.8500 vs champion 0.9000"),
        (PromotionRule(), _scores(0.90, 0.91), _scores(0.90, 0.90), True, "f1_score 0.9100 vs 0.9000"),
        (PromotionRule(), _scores(0.90, 0.90), _scores(0.90, 0.90), False, "a tie keeps the champion"),
        (PromotionRule(min_improvement=0.05), _scores(0.94, 0.9), _scores(0.90, 0.9), False, "+ 0.05"),
        (PromotionRule(min_improvement=0.05), _scores(0.96, 0.9), _scores(0.90, 0.9), True, "accuracy 0.9600"),
        (
            PromotionRule(metric="f1_score", tie_breaker="accuracy"),
            _scores(0.8, 0.95),
            _scores(0.9, 0.9),
            True,
            "f1_score",
        ),
    ],
    ids=["better", "worse", "tie broken", "full tie", "below margin", "above margin", "other metric"],
)
def test_the_rule(rule, candidate, champion, promoted, said):
    decided, reason = decide(rule, candidate, champion)
    assert decided == promoted and said in reason, reason


# -- real runs, in order ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run the pipeline as each test asks, on one store and instance; the version each run registered."""
    with module_store(tmp_path_factory, "promotion") as (home, uri, instance):

        def run(ops: dict | None = None, rows=None, name: str = "landing.csv", registry: dict | None = None):
            ops = dict(ops or {})
            if rows is not None:
                path = home / name
                rows.to_csv(path, index=False)
                ops["raw_data"] = {"config": {"csv_path": str(path)}}
            if registry:
                ops["registered_model"] = {"config": registry}
            # The store through resource config: each test's own environment (conftest) points elsewhere.
            resources = {"mlflow": {"config": {"mlflow_tracking_uri": uri}}}
            result = dg.execute_job(
                dg.reconstructable(iris_pipeline),
                instance=instance,
                run_config={"ops": ops, "resources": resources},
            )
            assert result.success
            client = MlflowClient(uri)
            (version,) = [
                v
                for v in client.search_model_versions(f"name = '{MODEL}'")
                if v.tags.get("dagster_run_id") == result.run_id
            ]
            event = instance.get_latest_materialization_event(dg.AssetKey("registered_model"))
            return client.get_model_version(MODEL, version.version), event.asset_materialization.metadata

        yield {"run": run, "uri": uri}


def _champion(runs) -> str:
    return MlflowClient(runs["uri"]).get_model_version_by_alias(MODEL, CHAMPION).version


def test_first_weak_then_better_then_equal(runs):
    weak, _ = runs["run"](WEAK)
    assert weak.tags[PROMOTION_TAG] == "promoted" and _champion(runs) == weak.version  # no champion yet

    better, metadata = runs["run"]()
    assert better.tags[PROMOTION_TAG] == "promoted", better.tags
    assert better.tags[COMPARED_WITH_TAG] == f"v{weak.version}"
    assert float(better.tags["candidate.accuracy"]) > float(better.tags["champion.accuracy"])
    assert _champion(runs) == better.version
    # The decision where people look: the asset's metadata in the Dagster UI...
    assert metadata["promoted"].value is True
    assert metadata["compared_with"].value == f"v{weak.version}"
    assert metadata["evaluation_rows"].value == 30
    assert metadata["evaluation_digest"].value == better.tags["evaluation_digest"]
    same_data = metadata["scores_on_the_same_data"].value
    assert same_data["accuracy"]["candidate"] == pytest.approx(0.9)
    assert same_data["accuracy"]["champion"] == pytest.approx(float(better.tags["champion.accuracy"]))
    assert "higher accuracy than the champion's" in metadata["promotion_rule"].value
    assert metadata["decision"].value.startswith(f"v{better.version} promoted to champion: accuracy")
    # ... and the version's description in MLflow.
    assert better.description == metadata["decision"].value

    equal, metadata = runs["run"]()
    assert equal.tags[PROMOTION_TAG] == "not promoted"
    assert "a tie keeps the champion" in equal.tags[NOT_PROMOTED_TAG]
    assert metadata["promoted"].value is False and metadata["alias"].value == "challenger"
    assert _champion(runs) == better.version


def test_a_model_that_knows_two_species_is_never_champion(runs, tmp_path):
    champion = _champion(runs)
    frame = load_bundled_iris().frame[CSV_COLUMNS]
    two_species = frame[frame.species != "virginica"]
    version, metadata = runs["run"](rows=two_species, name="two_species.csv")
    assert version.tags[PROMOTION_TAG] == "not promoted"
    assert "does not predict ['virginica']" in version.tags[NOT_PROMOTED_TAG]
    assert _champion(runs) == champion

    # iris-predict labels that version's two probability columns by its own classes.
    rows = tmp_path / "rows.csv"
    rows.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    result = subprocess.run(
        [
            str(BIN / "iris-predict"),
            "--tracking-uri",
            runs["uri"],
            "--model",
            f"models:/{MODEL}/{version.version}",
            str(rows),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **QUIET_ENV},
    )
    assert result.returncode == 0, result.stderr
    header, setosa, virginica = result.stdout.strip().splitlines()
    assert header == "species,setosa,versicolor"
    assert setosa.split(",")[0] == "setosa" and float(setosa.split(",")[1]) > 0.9
    assert virginica.split(",")[0] == "versicolor"  # the nearest species it knows


def test_a_model_from_a_small_file_cannot_take_champion_unless_better_on_the_same_data(runs):
    champion = _champion(runs)
    small = load_bundled_iris().frame[CSV_COLUMNS].iloc[::4].head(40)  # 40 rows, all three species
    version, _ = runs["run"](rows=small, name="small.csv")
    assert "evaluated on 8 rows, fewer than min_evaluation_rows=30" in version.tags[NOT_PROMOTED_TAG]
    assert _champion(runs) == champion

    # With the minimum lowered, the same data decides: both scored on the small run's 8 rows.
    version, metadata = runs["run"](rows=small, name="small.csv", registry={"min_evaluation_rows": 5})
    candidate = float(version.tags["candidate.accuracy"])
    held = float(version.tags["champion.accuracy"])
    assert version.tags["evaluation_rows"] == "8"
    promoted = version.tags[PROMOTION_TAG] == "promoted"
    assert (
        promoted
        == decide(
            PromotionRule(min_evaluation_rows=5), _tags_scores(version, "candidate"), _tags_scores(version, "champion")
        )[0]
    )
    assert _champion(runs) == (version.version if promoted else champion)
    same_data = metadata["scores_on_the_same_data"].value["accuracy"]
    assert same_data == {"candidate": pytest.approx(candidate), "champion": pytest.approx(held)}


def _tags_scores(version, side: str) -> dict[str, float]:
    return {m: float(version.tags[f"{side}.{m}"]) for m in ("accuracy", "precision", "recall", "f1_score")}


def test_served_names_cover_every_species_of_the_champion(runs):
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(runs["uri"])
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@{CHAMPION}")
    answered = set(model.predict(pd.DataFrame(load_bundled_iris().frame[FEATURES])))
    assert answered == set(SPECIES)
