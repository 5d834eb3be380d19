"""The data assets: the bundled table, a local CSV instead, and what a bad CSV is told."""

import dagster as dg
import pytest

from iris_assets import defs
from iris_assets.data.schema import CSV_COLUMNS, IrisDataError, load_bundled_iris, load_iris_csv
from iris_assets_tests.mlflow_checks import only_run


def test_bundled_table():
    table = load_bundled_iris()
    assert table.frame.shape == (150, 6)
    assert table.frame["target"].dtype == "int64"
    assert table.frame["species"].value_counts().to_dict() == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }


def _write_csv(path, frame):
    frame.to_csv(path, index=False)
    return str(path)


def test_raw_data_from_a_local_csv(tmp_path, instance, tracking_uri):
    frame = load_bundled_iris().frame[CSV_COLUMNS].iloc[::2]  # 75 rows, all three species
    csv = _write_csv(tmp_path / "iris.csv", frame)
    result = dg.materialize(
        defs.assets,
        resources=defs.resources,
        instance=instance,
        selection=["raw_data", "splits"],
        run_config={"ops": {"raw_data": {"config": {"csv_path": csv}}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("raw_data")[0].metadata
    assert metadata["dagster/row_count"].value == 75
    assert metadata["source"].value == csv
    splits = result.output_for_node("splits")
    assert len(splits.X_train) + len(splits.X_test) == 75
    assert only_run(tracking_uri).info.status == "FINISHED"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["petal_width"]), "missing ['petal_width']"),
        (lambda f: f.assign(colour="red"), "missing [], and 1 unexpected column"),
        (
            lambda f: f.assign(sepal_length="long"),
            "'sepal_length' must hold numbers (finite, >= 0, at most 3.403e+38, in cm); row 1 is not a number",
        ),
        (lambda f: f.assign(species="rose"), "150 row(s) have a species other than"),
        (lambda f: f[f.species == "setosa"], "needs at least two species"),
        (lambda f: f.iloc[:0], "has a header but no rows"),
    ],
    ids=["missing column", "extra column", "non-numeric", "unknown label", "one class", "header only"],
)
def test_bad_csv_is_refused_naming_file_and_problem(tmp_path, mutate, message):
    frame = mutate(load_bundled_iris().frame[CSV_COLUMNS].copy())
    csv = _write_csv(tmp_path / "bad.csv", frame)
    with pytest.raises(IrisDataError) as error:
        load_iris_csv(csv)
    assert str(error.value).startswith(csv)
    assert message in str(error.value)


def test_unreadable_csv_is_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(IrisDataError, match="cannot be read as CSV"):
        load_iris_csv(str(empty))
    with pytest.raises(IrisDataError, match="cannot be read as CSV"):
        load_iris_csv(str(tmp_path / "missing.csv"))
