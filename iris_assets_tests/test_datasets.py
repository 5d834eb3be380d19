"""Datasets other than Iris (issue 31): Wine and Digits from their shipped definitions, a user's CSV, bad tables.

Each pipeline runs in-process against a real sqlite MLflow store and a real Dagster
instance: one run per dataset, read back through MLflow's own API.
"""

import json
import shlex
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from iris_assets.data.schema import FEATURES
from iris_assets.datasets import locations
from iris_assets.datasets.definition import (
    DatasetDefinitionError,
    definition_path,
    load_definition,
    shipped_names,
)
from iris_assets.datasets.pipeline import dataset_definitions, op_name
from iris_assets.datasets.table import MAX_CLASSES, DatasetTableError, load_table
from iris_assets.execution.split import SPLIT_FROM_TAG
from iris_assets.packaging.onnx import DEFAULT_PARITY_ATOL, parity_tolerance
from iris_assets.serving import cli
from iris_assets.serving.predictor import IrisOnnxPredictor
from iris_assets.settings import DEFAULT_EXPERIMENT, DEFAULT_REGISTERED_MODEL
from iris_assets_tests.mlflow_checks import runs_of


def _run(definition, run_config=None, instance=None):
    """One in-process run of the dataset's job; its result."""
    job = dataset_definitions(definition).resolve_job_def(definition.job_name)
    return job.execute_in_process(run_config=run_config or {}, instance=instance, raise_on_error=False)


def _step_error(result) -> str:
    """The one failed step's own exception, as Dagster recorded it (under its execution-error wrapper)."""
    (failure,) = [event for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_FAILURE]
    error = failure.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def _all_runs(tracking_uri):
    client = MlflowClient(tracking_uri)
    return [run for e in client.search_experiments() for run in client.search_runs([e.experiment_id])]


def test_the_shipped_datasets_are_their_own_code_locations_and_groups_of_the_location_of_every_pipeline():
    """Each dataset its own location; and all_pipelines (workspace.datasets.yaml's one location): Iris and each
    dataset an asset group with its own jobs."""
    assert shipped_names() == ["digits", "wine"]
    wine = locations.wine
    keys = {key.to_user_string() for key in wine.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        f"wine/{stage}" for stage in ("raw_data", "splits", "model", "metrics", "onnx_model", "registered_model")
    }
    assert wine.resolve_job_def("wine_pipeline").name == "wine_pipeline"
    with pytest.raises(AttributeError, match=r"the datasets are \['digits', 'wine'\]"):
        locations.no_such_dataset  # noqa: B018
    workspace = yaml.safe_load((Path(__file__).parents[1] / "workspace.datasets.yaml").read_text())
    assert workspace["load_from"] == [
        {
            "python_module": {
                "module_name": "iris_assets.datasets.locations",
                "attribute": "all_pipelines",
                "location_name": "all_pipelines",
            }
        }
    ]
    everything = locations.all_pipelines
    graph = everything.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {"iris", *shipped_names()}
    jobs = {job.name for job in everything.resolve_all_job_defs()}
    for name in ["iris", *shipped_names()]:
        assert {f"{name}_pipeline", f"{name}_sweep", f"{name}_trial"} <= jobs


@pytest.mark.parametrize(
    ("name", "rows", "classes", "label"),
    [
        ("wine", 178, ["class_0", "class_1", "class_2"], "cultivar"),
        ("digits", 1797, [str(d) for d in range(10)], "digit"),
    ],
)
def test_a_shipped_dataset_end_to_end(instance, tracking_uri, name, rows, classes, label, capsys, tmp_path):
    definition = load_definition(definition_path(name))
    result = _run(definition, instance=instance)
    assert result.success

    # One MLflow run, in the dataset's own experiment; nothing in Iris's.
    (run,) = runs_of(tracking_uri, f"{name}-classification")
    assert run.info.status == "FINISHED" and run.info.run_name.startswith(f"{name}_pipeline")
    assert runs_of(tracking_uri, DEFAULT_EXPERIMENT) == []
    assert run.data.tags["check.onnx_parity"] == "passed" and run.data.tags["check.quality_gate"] == "passed"
    assert (
        json.loads(
            Path(
                MlflowClient(tracking_uri).download_artifacts(run.info.run_id, "confusion_matrix.json", str(tmp_path))
            ).read_text()
        )["labels"]
        == classes
    )

    # Registered as <name>-classifier, champion, tagged with its dataset.
    client = MlflowClient(tracking_uri)
    version = client.get_model_version_by_alias(f"{name}-classifier", "champion")
    assert version.run_id == run.info.run_id and version.tags["dataset"] == name
    assert client.get_registered_model(f"{name}-classifier").tags["dataset"] == name

    # ONNX parity on every row of the table, by class name; class names through pyfunc and iris-predict.
    table = load_table(definition)
    X = table.frame[table.features]
    mlflow.set_tracking_uri(tracking_uri)
    sk_model = mlflow.sklearn.load_model(f"models:/{name}-classifier@champion")
    onnx = IrisOnnxPredictor.load(f"models:/{name}-classifier@champion", tracking_uri)
    assert (onnx.dataset, onnx.features, onnx.label, onnx.class_names) == (name, table.features, label, classes)
    answered = onnx.predict(X.to_numpy())
    assert len(answered.species) == rows and answered.species == list(sk_model.predict(X))
    columns = [classes.index(str(c)) for c in sk_model.classes_]
    assert np.abs(answered.probabilities[:, columns] - sk_model.predict_proba(X)).max() <= parity_tolerance(
        DEFAULT_PARITY_ATOL, 100
    )
    pyfunc = list(mlflow.pyfunc.load_model(f"models:/{name}-classifier@champion").predict(X))
    assert pyfunc == answered.species and set(pyfunc) == set(classes)

    capsys.readouterr()
    rows_file = tmp_path / "rows.csv"
    X.iloc[[0, rows - 1]].to_csv(rows_file, index=False)  # with its header, in the model's column order
    assert cli.main(["--model", f"models:/{name}-classifier@champion", str(rows_file)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == ",".join([label, *classes])
    assert [line.split(",")[0] for line in lines[1:]] == answered.species[:1] + answered.species[-1:]

    # Iris's columns are not this model's: refused naming both datasets.
    iris_rows = tmp_path / "iris.csv"
    iris_rows.write_text(",".join(FEATURES) + "\n5.1,3.5,1.4,0.2\n")
    assert cli.main(["--model", f"models:/{name}-classifier@champion", str(iris_rows)]) == 2
    error = capsys.readouterr().err
    assert "(they are dataset 'iris''s)" in error and f"(dataset '{name}')" in error


def _csv_definition(
    tmp_path: Path, frame: pd.DataFrame, extra: str = "", name: str = "mine", label: str = "resultado"
) -> Path:
    frame.rename(columns={"resultado": label}).to_csv(tmp_path / f"{name}.csv", index=False)
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nsource: {name}.csv\nlabel: {label}\n{extra}")
    return path


def _separable(n_per_class: int, labels: list, features: int = 3, seed: int = 0) -> pd.DataFrame:
    """A table whose classes are told apart by their features (means 3 apart), shuffled."""
    rng = np.random.default_rng(seed)
    parts = [
        pd.DataFrame(
            rng.normal(3.0 * i, 1.0, size=(n_per_class, features)), columns=[f"x{j}" for j in range(features)]
        ).assign(resultado=label)
        for i, label in enumerate(labels)
    ]
    return pd.concat(parts).sample(frac=1, random_state=seed).reset_index(drop=True)


def test_a_user_s_binary_csv_with_text_labels_in_its_own_order(instance, tracking_uri, tmp_path, capsys):
    """Labels with spaces and accents, two classes, an order the definition gives (not sorted), in a
    column named ``label`` (also a name skl2onnx gives one of its own intermediates)."""
    labels = ["não aprovado", "aprovado com louvor"]
    path = _csv_definition(tmp_path, _separable(90, labels), extra=f"classes: {json.dumps(labels)}\n", label="label")
    result = _run(load_definition(path), instance=instance)
    assert result.success
    (run,) = runs_of(tracking_uri, "mine-classification")
    assert run.info.status == "FINISHED" and run.data.tags["registered_model"] == "mine-classifier/1"
    assert 0.9 <= run.data.metrics["accuracy"] <= 1.0 and 0.0 <= run.data.metrics["f1_score"] <= 1.0
    capsys.readouterr()
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"x0": 0.0, "x1": 0.0, "x2": 0.0}, {"x0": 3.0, "x1": 3.0, "x2": 3.0}]))
    assert cli.main(["--model", "models:/mine-classifier@champion", str(rows)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "label,não aprovado,aprovado com louvor"  # the definition's order, not sorted
    assert [line.split(",")[0] for line in lines[1:]] == labels
    mlflow.set_tracking_uri(tracking_uri)
    frame = pd.DataFrame([[0.0] * 3, [3.0] * 3], columns=["x0", "x1", "x2"])
    assert list(mlflow.pyfunc.load_model("models:/mine-classifier@champion").predict(frame)) == labels


def _table(frame: pd.DataFrame, tmp_path: Path, extra: str = "") -> None:
    load_table(load_definition(_csv_definition(tmp_path, frame, extra)))


def _with(frame: pd.DataFrame, column: str, row: int, value) -> pd.DataFrame:
    frame = frame.astype({column: object})
    frame.loc[row, column] = value
    return frame


GOOD = _separable(10, ["a", "b"])
BAD_TABLES = {
    "no label column": (
        GOOD.drop(columns="resultado"),
        "",
        "has no label column 'resultado'; its columns are ['x0', 'x1', 'x2']",
    ),
    "non-numeric feature": (
        _with(GOOD, "x1", 3, "alto"),
        "",
        "column 'x1' row 4 = 'alto' is not a number; features must be numbers",
    ),
    "missing values": (
        _with(_with(GOOD, "x2", 6, None), "x2", 8, None),
        "",
        "column 'x2' has 2 missing value(s) (first: row 7); every feature and label must be present",
    ),
    "a single class": (
        GOOD.assign(resultado="a"),
        "",
        "has a single class ['a'] (20 rows); a classifier needs at least 2",
    ),
    "too few rows of a class": (
        pd.concat([GOOD, _separable(3, ["c"], seed=1)]),
        "",
        "class 'c' has 3 row(s); each class needs at least 5",
    ),
    "too many classes": (
        _separable(5, [f"k{i}" for i in range(MAX_CLASSES + 1)]),
        "",
        f"has {MAX_CLASSES + 1} classes; at most {MAX_CLASSES} are allowed",
    ),
    "a label outside the given classes": (
        GOOD,
        "classes: [a]\n",
        "10 row(s) have a label outside the definition's classes ['a']",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_a_bad_table_is_refused_in_one_line(tmp_path, case):
    frame, extra, message = BAD_TABLES[case]
    with pytest.raises(DatasetTableError) as refused:
        _table(frame, tmp_path, extra)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert str(refused.value).startswith(f"dataset mine ({tmp_path / 'mine.csv'}): ")


def test_a_file_above_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("IRIS_MAX_CSV_BYTES", "1000")
    with pytest.raises(DatasetTableError, match=r"is [0-9,]+ bytes; dataset mine's CSV may hold at most 1,000 bytes"):
        _table(_separable(50, ["a", "b"]), tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: mine\nsource: gone.csv\nlabel: y\n", "source 'gone.csv' names no file"),
        ("name: mine\nsource: sklearn:titanic\nlabel: y\n", "source 'sklearn:titanic' is not a bundled set"),
        ("name: iris\nsource: sklearn:iris\nlabel: y\n", "name 'iris' is the project's own Iris pipeline"),
        (
            "name: all_pipelines\nsource: sklearn:iris\nlabel: y\n",
            "name 'all_pipelines' is the location of every pipeline",
        ),
        ("name: Mine!\nsource: sklearn:iris\nlabel: y\n", "name 'Mine!' is not allowed"),
        ("name: mine\nsource: sklearn:iris\n", "label is missing"),
        ("name: mine\nsource: sklearn:iris\nlabel: y\ncolour: red\n", "unknown key(s) ['colour']"),
    ],
    ids=[
        "missing file",
        "unknown bundled set",
        "iris reserved",
        "all_pipelines reserved",
        "bad name",
        "no label",
        "unknown key",
    ],
)
def test_a_bad_definition_is_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(DatasetDefinitionError) as refused:
        load_definition(path)
    assert message in str(refused.value) and str(refused.value).startswith(f"{path}: ")


def test_a_bad_table_in_a_run_creates_nothing(instance, tracking_uri, tmp_path):
    """Refused in raw_data, before its first MLflow call: no MLflow run (none RUNNING), no registered model."""
    frame, _, message = BAD_TABLES["missing values"]
    result = _run(load_definition(_csv_definition(tmp_path, frame)), instance=instance)
    assert not result.success
    assert message in _step_error(result)
    assert [step.step_key for step in result.get_step_success_events()] == []
    assert _all_runs(tracking_uri) == []
    assert MlflowClient(tracking_uri).search_registered_models() == []


def test_a_wine_model_is_refused_as_iris_s_champion(instance, tracking_uri):
    """iris-classifier (made before datasets existed: untagged, so Iris's) never gets a Wine version."""
    client = MlflowClient(tracking_uri)
    client.create_registered_model(DEFAULT_REGISTERED_MODEL)
    wine = load_definition(definition_path("wine"))
    registry = op_name(wine, "registered_model")
    result = _run(
        wine, {"ops": {registry: {"config": {"registered_model": DEFAULT_REGISTERED_MODEL}}}}, instance=instance
    )
    assert not result.success
    assert _step_error(result).endswith(
        "registered model 'iris-classifier' holds models of dataset 'iris'; a model of dataset 'wine' may not be "
        "registered there (nor become its champion): register it under its own dataset's name"
    )
    assert client.search_model_versions(f"name = '{DEFAULT_REGISTERED_MODEL}'") == []
    assert client.get_registered_model(DEFAULT_REGISTERED_MODEL).aliases == {}
    assert [run.info.status for run in runs_of(tracking_uri, "wine-classification")] == ["FAILED"]


def test_integer_labels_are_ordered_as_numbers_and_answered_as_their_text(tmp_path):
    frame = _separable(6, [10, 2, 33])
    path = _csv_definition(tmp_path, frame)
    table = load_table(load_definition(path))
    assert table.class_names == ["2", "10", "33"]  # numerically; as text it would be 10, 2, 33
    assert sorted(table.frame["resultado"].unique()) == ["10", "2", "33"]


@pytest.mark.servers
def test_wine_s_champion_is_served_by_mlflow_models_serve_with_its_class_names(instance, tracking_uri, tmp_path):
    """The documented `mlflow models serve` command, run as written (the venv not on PATH), on Wine's champion."""
    import os
    import re
    import urllib.request

    from iris_harness.environment import BIN, REPO_ROOT
    from iris_harness.processes import Service, free_port, wait_for_http

    wine = load_definition(definition_path("wine"))
    assert _run(wine, instance=instance).success
    page = (REPO_ROOT / "docs" / "datasets.md").read_text()
    (command,) = [block for block in re.findall(r"```bash\n(.*?)```", page, re.S) if "mlflow models serve" in block]
    port = free_port()
    command = command.replace("-p 5003", f"-p {port}")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not p.startswith(str(BIN)))
    server = Service(
        "serve-wine",
        ["/bin/bash", "-c", f"cd {shlex.quote(str(REPO_ROOT))} && {command}"],
        tmp_path,
        env={"PATH": path, "MLFLOW_TRACKING_URI": tracking_uri},
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", server, timeout=180)
        table = load_table(wine)
        body = {"dataframe_split": {"columns": table.features, "data": table.frame[table.features].values.tolist()}}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            predicted = json.loads(response.read())["predictions"]
        mlflow.set_tracking_uri(tracking_uri)
        sk_model = mlflow.sklearn.load_model("models:/wine-classifier@champion")
        assert predicted == list(sk_model.predict(table.frame[table.features]))
        assert set(predicted) == {"class_0", "class_1", "class_2"}
    finally:
        server.stop()


# "Materialize all" in the real UI (Dagster 1.13.27): measured, not assumed.
from iris_assets_tests.test_browser import browser, screenshots  # noqa: E402, F401  (fixtures)

WINE_LOCATION = ("-m", "iris_assets.datasets.locations", "-a", "wine")


@pytest.mark.browser
@pytest.mark.servers
def test_materialize_all_is_one_run_per_pipeline_in_a_dataset_s_ui_and_in_the_ui_of_every_pipeline(
    browser,  # noqa: F811
    dagster_home,
    tracking_uri,
    tmp_path,
):
    """Wine's UI (its location alone): one click on the global lineage page, no dialog, one Dagster run, one
    MLflow run in wine-classification; then a Wine sweep there. With Iris, Wine and Digits in one UI
    (workspace.datasets.yaml: one location), one click, no dialog: the run becomes one run per pipeline
    before its first step, each one MLflow run in its own experiment, never two datasets in one."""
    import re

    from playwright.sync_api import expect

    from iris_harness.processes import Service, dagster_webserver, free_port, wait_until

    def global_materialize_all(port):
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/asset-groups")
        button = page.get_by_role("button", name=re.compile(r"Materialize all$"))  # no "…": no partition dialog
        expect(button).to_be_enabled()
        button.click()
        return page

    port = free_port()
    services = [Service("daemon", ["dagster-daemon", "run", *WINE_LOCATION], tmp_path)]
    try:
        services.append(dagster_webserver(tmp_path, port, WINE_LOCATION))
        page = global_materialize_all(port)
        expect(page.get_by_role("link", name="View", exact=True)).to_have_attribute(
            "href", re.compile(r"^/runs/[0-9a-f-]{36}$")
        )
        expect(page.get_by_role("dialog")).to_have_count(0)
        with dg.DagsterInstance.get() as instance:
            (run,) = wait_until(
                lambda: [r for r in instance.get_runs() if r.is_finished], timeout=300, what="the run to end"
            )
            assert run.status == dg.DagsterRunStatus.SUCCESS, f"see {tmp_path}/*.log"
            assert len(instance.get_runs()) == 1 and instance.get_backfills() == []
        (mlflow_run,) = runs_of(tracking_uri, "wine-classification")
        assert mlflow_run.info.status == "FINISHED" and mlflow_run.data.tags["dagster_run_id"] == run.run_id
        assert len(_all_runs(tracking_uri)) == 1  # and none in Iris's or another experiment
        _assert_a_wine_sweep(port, tracking_uri)
    finally:
        for service in reversed(services):
            service.stop()

    # Every pipeline in one location (workspace.datasets.yaml): one click, no dialog; the run becomes one run
    # per pipeline before its first step, each one MLflow run in its own experiment.
    with dg.DagsterInstance.get() as instance:
        before = {run.run_id for run in instance.get_runs()}
    port = free_port()
    workspace = ("-w", "workspace.datasets.yaml")
    services = [Service("daemon", ["dagster-daemon", "run", *workspace], tmp_path)]
    try:
        services.append(dagster_webserver(tmp_path, port, workspace))
        page = global_materialize_all(port)
        expect(page.get_by_role("link", name="View", exact=True)).to_have_attribute(
            "href", re.compile(r"^/runs/[0-9a-f-]{36}$")
        )
        expect(page.get_by_role("dialog")).to_have_count(0)
        with dg.DagsterInstance.get() as instance:

            def new_runs():
                runs = [run for run in instance.get_runs() if run.run_id not in before]
                return runs if len(runs) == 4 and all(run.is_finished for run in runs) else None

            runs = wait_until(new_runs, timeout=600, what="the run and its three pipeline runs to end")
            (parent,) = [run for run in runs if SPLIT_FROM_TAG not in run.tags]
            children = [run for run in runs if run.tags.get(SPLIT_FROM_TAG) == parent.run_id]
            assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}, f"see {tmp_path}/*.log"
            parent_events = instance.all_logs(parent.run_id)
            assert not [e for e in parent_events if e.dagster_event and e.dagster_event.is_step_start]
            by_pipeline = {_pipeline_of(run): run for run in children}
            assert sorted(by_pipeline) == ["digits", "iris", "wine"], [run.asset_selection for run in children]
            for run in children:  # each child's assets are one pipeline's, all of them
                assert len(run.asset_selection) == 6
        for pipeline, experiment in (("iris", DEFAULT_EXPERIMENT), ("wine", "wine-classification"),
                                     ("digits", "digits-classification")):  # fmt: skip
            (mlflow_run,) = [
                r for r in runs_of(tracking_uri, experiment)
                if r.data.tags["dagster_run_id"] == by_pipeline[pipeline].run_id
            ]  # fmt: skip
            assert mlflow_run.info.status == "FINISHED", (pipeline, mlflow_run.info.status)
        # Nothing tagged with the run that spanned them all: it logged nothing.
        assert not [r for r in _all_runs(tracking_uri) if r.data.tags.get("dagster_run_id") == parent.run_id]
    finally:
        for service in reversed(services):
            service.stop()


def _pipeline_of(run: dg.DagsterRun) -> str:
    prefixes = {key.path[0] if len(key.path) > 1 else "iris" for key in run.asset_selection or ()}
    (pipeline,) = prefixes
    return pipeline


def _assert_a_wine_sweep(port: int, tracking_uri: str) -> None:
    """`iris-sweep launch examples/wine_sweep.yaml --wait` under Wine's UI: Wine's sweep job, its trials as runs
    of wine_trial, the parent run in wine-hyperparameter-tuning, the best trial a version of wine-classifier."""
    import subprocess

    from iris_assets.tuning.ops import SWEEP_PARENT_TAG, TRIAL_TAG
    from iris_assets.tuning.space import load
    from iris_harness.environment import BIN, REPO_ROOT

    sweep_file = REPO_ROOT / "examples" / "wine_sweep.yaml"
    done = subprocess.run(
        [str(BIN / "iris-sweep"), "launch", str(sweep_file), "--wait", "--dagster-url", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    keys = load(sweep_file).keys
    assert f"trial {len(keys)}/{len(keys)} " in done.stdout and "best trial " in done.stdout, done.stdout
    client = MlflowClient(tracking_uri)
    tuning = runs_of(tracking_uri, "wine-hyperparameter-tuning")
    (parent,) = [run for run in tuning if run.data.tags.get(SWEEP_PARENT_TAG) == "true"]
    children = [run for run in tuning if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and sorted(c.data.tags[TRIAL_TAG] for c in children) == sorted(keys)
    assert {c.info.status for c in children} == {"FINISHED"}
    (version,) = client.search_model_versions(
        f"name = 'wine-classifier' and tags.sweep_parent_run_id = '{parent.info.run_id}'"
    )
    assert version.tags["trial"] == parent.data.tags["best_trial"]
    with dg.DagsterInstance.get() as instance:
        trial_jobs = {instance.get_run_by_id(c.data.tags["dagster_run_id"]).job_name for c in children}
    assert trial_jobs == {"wine_trial"}
    # Nothing of Iris's: its experiments stay empty.
    assert {e.name for e in client.search_experiments()} >= {"wine-classification", "wine-hyperparameter-tuning"}
    assert client.get_experiment_by_name(DEFAULT_EXPERIMENT) is None


def test_a_refused_value_stops_a_dataset_run_started_from_its_definition(instance, tracking_uri):
    """Wine's location, run with execute_in_process: the model's validation refuses before any step."""
    from iris_assets.config_errors import ConfigRefused

    definition = load_definition(definition_path("wine"))
    job = locations.wine.resolve_job_def(definition.job_name)
    run_config = {"ops": {op_name(definition, "model"): {"config": {"n_estimators": -3}}}}
    with pytest.raises(ConfigRefused) as refused:
        job.execute_in_process(run_config=run_config, instance=instance)
    assert str(refused.value) == (
        "wine__model: n_estimators=-3 is not allowed: expected an integer greater than 0 and at most 10000"
    )
    (run,) = instance.get_runs()
    assert not [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.is_step_start]
    assert _all_runs(tracking_uri) == []


def test_the_location_of_every_pipeline_binds_each_run_to_its_pipeline_s_experiment(instance, tracking_uri):
    """all_pipelines (workspace.datasets.yaml): Wine's job there is one MLflow run in wine-classification; a run
    over several pipelines started where no executor of ours can split it (execute_in_process) is refused
    before its first step, in one line naming them, and creates no MLflow run."""
    from iris_assets.execution.split import SpansPipelines

    everything = locations.all_pipelines
    wine = everything.resolve_job_def("wine_pipeline").execute_in_process(instance=instance)
    assert wine.success
    (mlflow_run,) = runs_of(tracking_uri, "wine-classification")
    assert mlflow_run.data.tags["dagster_run_id"] == wine.run_id and mlflow_run.info.status == "FINISHED"
    assert mlflow_run.info.run_name.startswith("wine_pipeline")
    with pytest.raises(SpansPipelines) as refused:
        everything.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    assert str(refused.value).startswith("this run spans the pipelines digits, iris, wine: ")
    assert len(_all_runs(tracking_uri)) == 1


def test_a_terminal_run_over_several_pipelines_is_refused_in_one_line(dagster_home, tracking_uri):
    """`dagster asset materialize --select '*'` on every pipeline's location: no daemon behind a terminal to run a
    run per pipeline, so refused before any step, naming them; no MLflow run."""
    from iris_harness.environment import REPO_ROOT, run_cli

    result = run_cli(
        "dagster", "asset", "materialize", "-m", "iris_assets.datasets.locations", "-a", "all_pipelines",
        "--select", "*", expect_ok=False, cwd=REPO_ROOT,
    )  # fmt: skip
    printed = result.stdout + result.stderr
    assert result.returncode != 0
    assert "dagster asset materialize: this run spans the pipelines digits, iris, wine: " in printed, printed
    assert "Traceback" not in printed and "STEP_START" not in printed
    assert _all_runs(tracking_uri) == []


def test_wine_from_a_terminal_on_the_multiprocess_executor(dagster_home, tracking_uri, tmp_path):
    """docs/datasets.md's terminal command, each step in its own process (each rebuilds Wine's location from
    the run's origin, as a Celery worker does): one FINISHED MLflow run in wine-classification."""
    from iris_harness.environment import REPO_ROOT, run_cli

    config = tmp_path / "multiprocess.yaml"
    config.write_text("execution:\n  config:\n    multiprocess: {}\n")
    run_cli(
        "dagster", "job", "execute", "-m", "iris_assets.datasets.locations", "-a", "wine", "-j", "wine_pipeline",
        "-c", str(config), cwd=REPO_ROOT,
    )  # fmt: skip
    (mlflow_run,) = runs_of(tracking_uri, "wine-classification")
    assert mlflow_run.info.status == "FINISHED"
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS and mlflow_run.data.tags["dagster_run_id"] == run.run_id
        pids = {
            e.dagster_event.pid
            for e in instance.all_logs(run.run_id)
            if e.dagster_event and e.dagster_event.is_step_start
        }
    assert len(pids) == 6  # a process per step
    assert len(_all_runs(tracking_uri)) == 1
