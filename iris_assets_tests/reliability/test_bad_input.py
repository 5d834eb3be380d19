"""Bad input, as a table: each case must fail with an error naming the input and the rule,
leave no MLflow run RUNNING and no registry version, and keep the store usable."""

import math
import re
import time

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlflow import MlflowClient

from iris_assets.data.schema import (
    CSV_COLUMNS,
    FEATURES,
    MIN_ROWS_PER_SPECIES,
    SPECIES,
    IrisDataError,
    load_bundled_iris,
    load_iris_csv,
    validate_iris_frame,
)
from iris_assets_tests.mlflow_checks import runs_of
from iris_harness.processes import free_port
from iris_harness.runs import iris_pipeline


def _model(**config):
    return {"ops": {"model": {"config": config}}}


def _split(**config):
    return {"ops": {"splits": {"config": config}}}


# (run config, what the error must name). Type and key errors are Dagster's (refused
# before a run exists); a step's ranges are pydantic's, refused before the run's first step
# (config_errors; the run ends FAILED, no step ran); rules on data and resources fail their step.
RUN_CONFIG_CASES = {
    "n_estimators negative": (_model(n_estimators=-5), ["n_estimators=-5", "greater than 0"]),
    "n_estimators zero": (_model(n_estimators=0), ["n_estimators", "greater than 0"]),
    "n_estimators huge": (
        _model(n_estimators=10**12),
        ["n_estimators=1000000000000", "at most 10000"],
    ),
    "n_estimators non-integer": (_model(n_estimators=2.5), ["n_estimators", "2.5", "Int"]),
    "n_estimators a string": (_model(n_estimators="many"), ["n_estimators", "many", "Int"]),
    "max_depth zero": (_model(max_depth=0), ["max_depth", "greater than 0"]),
    "max_depth huge": (_model(max_depth=10**9), ["max_depth=1000000000", "at most 1000"]),
    "random_state negative": (_model(random_state=-1), ["random_state=-1", "at least 0"]),
    "unknown key": (_model(n_trees=10), ["n_trees", "unexpected"]),
    "unknown op": ({"ops": {"trainer": {"config": {}}}}, ["trainer"]),
    "test_size 0": (_split(test_size=0), ["test_size", "greater than 0"]),
    "test_size 1": (_split(test_size=1), ["test_size", "less than 1"]),
    "test_size a string": (_split(test_size="20%"), ["test_size", "20%", "Float"]),
    "test_size leaving one training row": (
        _split(test_size=0.99),
        ["test_size=0.99", "1 for training", "on each side"],
    ),
    "a credential in env": (
        {"resources": {"mlflow": {"config": {"env": {"MLFLOW_TRACKING_PASSWORD": "hunter3"}}}}},
        ["MLFLOW_TRACKING_PASSWORD", "looks like a credential", "dg.EnvVar"],
    ),
    "a credential in env_to_tag": (
        {"resources": {"mlflow": {"config": {"env_to_tag": ["MLFLOW_TRACKING_TOKEN"]}}}},
        ["MLFLOW_TRACKING_TOKEN", "looks like a credential"],
    ),
}


def _frame():
    return load_bundled_iris().frame[CSV_COLUMNS].copy()


def _csv(path, frame) -> str:
    frame.to_csv(path, index=False)
    return str(path)


# name -> (make the file in a folder, return its path; what the error must name besides the path)
DATA_FILE_CASES = {
    "missing column": (lambda d: _csv(d / "f.csv", _frame().drop(columns=["petal_width"])), "missing ['petal_width']"),
    "extra column": (lambda d: _csv(d / "f.csv", _frame().assign(colour="red")), "and 1 unexpected column"),
    "renamed column": (
        lambda d: _csv(d / "f.csv", _frame().rename(columns={"species": "class"})),
        "missing ['species'], and 1 unexpected column",
    ),
    "NaN": (lambda d: _csv(d / "f.csv", _frame().assign(sepal_width=float("nan"))), "'sepal_width' must hold numbers"),
    "string in a number column": (
        lambda d: _csv(d / "f.csv", _frame().assign(petal_length="long")),
        "'petal_length' must hold numbers (finite, >= 0, at most 3.403e+38, in cm); row 1 is not a number",
    ),
    "unknown label": (
        lambda d: _csv(d / "f.csv", _frame().replace({"species": {"setosa": "rose"}})),
        "50 row(s) have a species other than ['setosa', 'versicolor', 'virginica'] (first: row 1)",
    ),
    "one class only": (lambda d: _csv(d / "f.csv", _frame().iloc[:50]), "needs at least two species"),
    "5 rows": (lambda d: _csv(d / "f.csv", _frame().iloc[[0, 1, 2, 50, 51]]), "each species needs at least 5 rows"),
    "beyond float32": (
        lambda d: _csv(d / "f.csv", _frame().assign(sepal_length=1e308)),
        "'sepal_length' must hold numbers (finite, >= 0, at most 3.403e+38, in cm); row 1 is not finite within float32",
    ),
    "empty file": (lambda d: _bytes(d / "f.csv", b""), "cannot be read as CSV"),
    "header only": (lambda d: _bytes(d / "f.csv", ",".join(CSV_COLUMNS).encode() + b"\n"), "has a header but no rows"),
    "not UTF-8": (
        lambda d: _bytes(d / "f.csv", ",".join(CSV_COLUMNS).encode() + b"\n5.1,3.5,1.4,0.2,s\xe9tosa\n"),
        "is not UTF-8 text",
    ),
    "very large file": (lambda d: _sparse(d / "f.csv", 4 * 1024**3), "an Iris CSV may hold at most"),
    "a directory": (lambda d: (d / "f.csv").mkdir() or str(d / "f.csv"), "is not a regular file"),
    "a dangling link": (
        lambda d: (d / "f.csv").symlink_to(d / "gone.csv") or str(d / "f.csv"),
        "dangling symbolic link",
    ),
    "no such file": (lambda d: str(d / "nowhere.csv"), "No such file"),
}


def _bytes(path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def _sparse(path, size: int) -> str:
    """A 4 GiB file that takes no disk: the size check must refuse it before reading."""
    with open(path, "wb") as file:
        file.truncate(size)
    return str(path)


def _assert_nothing_left(tracking_uri: str) -> None:
    runs = runs_of(tracking_uri)
    assert [r.info.status for r in runs if r.info.status == "RUNNING"] == [], "a run was left RUNNING"
    assert all(r.info.end_time is not None for r in runs)
    assert MlflowClient(tracking_uri).search_model_versions() == []


def _failure_message(result) -> tuple[str, str]:
    """The failure's message, and where it was refused: at a step, or before the first step."""
    failures = result.get_step_failure_events()
    if not failures:  # refused before any step (config_errors): the run's own failure names it
        assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
        (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
        return failure.event_specific_data.error.to_string(), "refused before its first step"
    assert len(failures) == 1, [f.step_key for f in failures]
    return failures[0].step_failure_data.error.to_string(), "refused at its step"


@pytest.mark.parametrize("case", RUN_CONFIG_CASES)
def test_bad_run_config(case, instance, tracking_uri, outcome):
    """Bad run config: refused naming the key, the value and the rule"""
    run_config, named = RUN_CONFIG_CASES[case]
    started = time.monotonic()
    try:
        result = dg.execute_job(
            dg.reconstructable(iris_pipeline), instance=instance, run_config=run_config, raise_on_error=False
        )
    except dg.DagsterInvalidConfigError as error:
        message, where = str(error), "refused at launch"
    else:
        assert not result.success
        message, where = _failure_message(result)
    for part in named:
        assert part in message, (part, message)
    assert "hunter3" not in message
    outcome.note(f"{case}: {where} in {time.monotonic() - started:.1f} s")
    _assert_nothing_left(tracking_uri)


@pytest.mark.parametrize("case", DATA_FILE_CASES)
def test_bad_data_file(case, tmp_path, instance, tracking_uri, outcome):
    """Bad data file: refused at raw_data naming the file and the problem"""
    make, named = DATA_FILE_CASES[case]
    folder = tmp_path / "data"
    folder.mkdir()
    path = make(folder)
    started = time.monotonic()
    result = dg.execute_job(
        dg.reconstructable(iris_pipeline),
        instance=instance,
        run_config={"ops": {"raw_data": {"config": {"csv_path": path}}}},
        raise_on_error=False,
    )
    assert not result.success
    message, _where = _failure_message(result)
    assert "IrisDataError" in message and path in message and named in message, message
    outcome.note(f"{case}: {time.monotonic() - started:.1f} s")
    # Refused before anything was logged: the (lazy) binding never opened a run.
    assert runs_of(tracking_uri) == []
    _assert_nothing_left(tracking_uri)


ENV_CASES = {
    "unreachable server": (lambda: f"http://127.0.0.1:{free_port()}", "is unreachable"),
    "unknown scheme": (lambda: "htp://127.0.0.1:5000", "cannot be used"),
    "http without a host": (lambda: "http://", "needs a host"),
    "postgresql without a driver": (
        lambda: "postgresql://iris:hunter2@127.0.0.1:1/mlflow",
        "write postgresql+psycopg2://",
    ),
}


@pytest.mark.parametrize("case", ENV_CASES)
def test_bad_tracking_uri(case, instance, monkeypatch, tmp_path, outcome):
    """Bad MLFLOW_TRACKING_URI: the step fails naming the URI (never its password) within seconds"""
    make, named = ENV_CASES[case]
    uri = make()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    result = dg.execute_job(dg.reconstructable(iris_pipeline), instance=instance, raise_on_error=False)
    seconds = time.monotonic() - started
    assert not result.success
    message, _where = _failure_message(result)
    assert "MlflowBindingError" in message and "$MLFLOW_TRACKING_URI" in message and named in message, message
    assert "hunter2" not in message
    outcome.note(f"{case}: failed in {seconds:.1f} s")


def test_credentials_are_env_var_references(monkeypatch):
    """The code location's resource holds the variables' names; Dagster resolves them in the run."""
    from iris_assets.tracking import MlflowRun, credentials_from_environment

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter3")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    fields = credentials_from_environment()
    assert fields == {"tracking_password": dg.EnvVar("MLFLOW_TRACKING_PASSWORD")}
    assert "hunter3" not in repr(MlflowRun(**fields))


def test_deleted_experiment(instance, tracking_uri, outcome):
    """Experiment deleted in MLflow: refused naming it and how to restore it"""
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("relatorio-II-iris-pipeline")
    client.delete_experiment(experiment_id)
    result = dg.execute_job(dg.reconstructable(iris_pipeline), instance=instance, raise_on_error=False)
    message, _where = _failure_message(result)
    assert "relatorio-II-iris-pipeline" in message and "is deleted" in message and "restore" in message
    assert client.search_runs([experiment_id]) == []
    outcome.note("no run created in the deleted experiment")
    _assert_nothing_left(tracking_uri)


SENTINEL = "db_password=hunter2-9f1a"


@pytest.mark.parametrize(
    "where",
    ["column name", "number cell", "species cell", "first line"],
)
def test_errors_never_echo_the_file(tmp_path, where, outcome):
    """A data file's content (a secret in a column name, a cell, its first line) never appears in the error"""
    frame = _frame()
    path = tmp_path / "f.csv"
    if where == "column name":
        frame = frame.rename(columns={"species": SENTINEL})
    elif where == "number cell":
        frame["petal_width"] = frame["petal_width"].astype(object)
        frame.loc[3, "petal_width"] = SENTINEL
    elif where == "species cell":
        frame.loc[3, "species"] = SENTINEL
    frame.to_csv(path, index=False)
    if where == "first line":
        path.write_text(SENTINEL + "\n" + path.read_text())
    with pytest.raises(IrisDataError) as error:
        load_iris_csv(str(path))
    assert SENTINEL not in str(error.value) and "hunter2" not in str(error.value), str(error.value)
    outcome.note(f"{where}: {str(error.value).removeprefix(str(path))}")


# -- properties of the data validation ---------------------------------------------------------

_measurement = st.floats(min_value=0.0, max_value=50.0, allow_nan=False, width=32)
_not_a_length = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.floats(max_value=-1e-6, allow_infinity=False),
    st.floats(min_value=3.5e38, allow_infinity=False),  # beyond float32
    st.text(min_size=1, max_size=8).filter(lambda s: _not_a_number(s)),
)
_measurements = st.tuples(_measurement, _measurement, _measurement, _measurement)
# Valid tables: two or three species, at least MIN_ROWS_PER_SPECIES rows of each, in any order.
_table = (
    st.lists(st.sampled_from(SPECIES), min_size=2, max_size=3, unique=True)
    .flatmap(
        lambda species: st.tuples(
            *[st.lists(_measurements, min_size=MIN_ROWS_PER_SPECIES, max_size=12) for _ in species]
        ).map(lambda groups: [(*row, name) for name, group in zip(species, groups, strict=True) for row in group])
    )
    .flatmap(st.permutations)
)


def _to_frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=CSV_COLUMNS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_table)
def test_valid_tables_pass_unchanged(outcome, rows):
    """Property: any table of valid rows passes validation unchanged"""
    outcome.note("150 generated tables")
    frame = validate_iris_frame(_to_frame(rows), "t.csv")
    assert len(frame) == len(rows)
    assert list(frame.columns) == [*FEATURES, "target", "species"]
    assert frame["target"].tolist() == [SPECIES.index(r[4]) for r in rows]
    for i, column in enumerate(FEATURES):
        assert frame[column].tolist() == [r[i] for r in rows]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    _table,
    st.data(),
    st.sampled_from(FEATURES),
    _not_a_length,
)
def test_one_bad_cell_is_named(outcome, rows, data, column, bad):
    """Property: one bad cell (NaN, inf, negative, text) anywhere is refused naming its column and row"""
    outcome.note("150 generated tables")
    frame = _to_frame(rows)
    row = data.draw(st.integers(0, len(rows) - 1))
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = bad
    with pytest.raises(IrisDataError) as error:
        validate_iris_frame(frame, "t.csv")
    message = str(error.value)
    assert message.startswith("t.csv: ") and repr(column) in message
    assert re.search(rf"row {row + 1} (is empty|is not a number|is not finite within float32|is negative)$", message)


def _not_a_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return True
    return False


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_any_bytes_are_a_table_or_an_iris_data_error(tmp_path, outcome, content):
    """Property: any bytes in a data file give a valid table or an IrisDataError naming the file, never another crash"""
    outcome.note("100 generated files")
    path = tmp_path / "any.csv"
    path.write_bytes(content)
    try:
        table = load_iris_csv(str(path))
    except IrisDataError as error:
        assert str(error).startswith(str(path))
    else:
        assert set(table.frame["species"]) <= set(SPECIES) and len(table.frame) > 0
