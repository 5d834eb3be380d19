"""The other project's definitions: ops, a graph-backed asset, a multi-asset, a partitioned asset."""

import json
import tempfile
from pathlib import Path
from typing import Optional

import dagster as dg
import mlflow
from dagster_mlflow import end_mlflow_on_run_finished

from iris_assets.tracking import MlflowRun


class StepConfig(dg.Config):
    fail: bool = False  # raise after logging


# -- dagster-mlflow's own scenario: two ops of a job, fluent params, its end-of-run hook -------------


@dg.op(required_resource_keys={"mlflow"})
def op1(context: dg.OpExecutionContext) -> int:
    mlflow.log_params({"alpha": 1, "beta": "two"})
    return 1


@dg.op(required_resource_keys={"mlflow"})
def op2(context: dg.OpExecutionContext, value: int) -> int:
    context.resources.mlflow.log_params({"gamma": value + 1})  # the resource's own call, as stock allows
    mlflow.log_metric("value", value)
    return value + 1


@dg.job(hooks={end_mlflow_on_run_finished})
def two_ops():
    op2(op1())


# -- MLflow as people write it, in assets ----------------------------------------------------------


@dg.asset(required_resource_keys={"mlflow"})
def fluent_logging(context: dg.AssetExecutionContext, config: StepConfig) -> str:
    """Every fluent call the binding routes, and the active run's id."""
    active = mlflow.active_run()
    bound = context.resources.mlflow.run_id
    assert active is not None and active.info.run_id == bound, (active, bound)
    mlflow.log_param("fluent_param", 1)
    mlflow.log_params({"fluent_params": 2})
    mlflow.log_metric("fluent_metric", 3.0)
    mlflow.log_metrics({"fluent_metrics": 4.0})
    mlflow.set_tag("fluent_tag", "yes")
    mlflow.set_tags({"fluent_tags": "yes"})
    mlflow.log_dict({"a": 1}, "fluent/dict.json")
    mlflow.log_text("text", "fluent/text.txt")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "artifact.json"
        path.write_text(json.dumps({"b": 2}))
        mlflow.log_artifact(str(path), "fluent")
        (Path(folder) / "more").mkdir()
        (Path(folder) / "more" / "c.txt").write_text("c")
        mlflow.log_artifacts(str(Path(folder) / "more"), "fluent/more")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure()
    figure.add_subplot().plot([1, 2], [3, 4])
    mlflow.log_figure(figure, "fluent/figure.png")
    mlflow.log_table({"x": [1, 2], "y": [3, 4]}, "fluent/table.json")
    import pandas as pd

    mlflow.log_input(mlflow.data.from_pandas(pd.DataFrame({"x": [1.0, 2.0]}), name="fluent_input"), context="training")
    from sklearn.dummy import DummyClassifier

    fitted = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
    mlflow.sklearn.log_model(fitted, name="fluent_model", serialization_format="cloudpickle")
    if config.fail:
        raise RuntimeError("fluent_logging fails on purpose, after logging")
    return active.info.run_id


@dg.asset(required_resource_keys={"mlflow"})
def autologged(context: dg.AssetExecutionContext) -> str:
    """scikit-learn autologging: params, training metrics and the model, into the bound run."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.sklearn.autolog(log_models=True, log_datasets=False)
    try:
        X, y = load_iris(return_X_y=True)
        LogisticRegression(max_iter=300).fit(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    return context.resources.mlflow.run_id


@dg.asset(required_resource_keys={"mlflow"})
def seed_style(context: dg.AssetExecutionContext) -> str:
    """The Airflow seed's way: start_run with the id passed along (here, the bound one), then a child run."""
    run_id = context.resources.mlflow.run_id  # the bound run's id (mlflow.active_run().info.run_id too)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metric("seed_accuracy", 0.9)
    status = mlflow.MlflowClient().get_run(run_id).info.status
    assert status == "RUNNING", f"the bound run ended at the block's exit: {status}"
    with mlflow.start_run(run_name="seed_child") as child:
        mlflow.log_param("child_param", "c")
        assert child.info.run_id != run_id
    mlflow.end_run()  # ends nothing: the run ends with the Dagster run
    assert mlflow.MlflowClient().get_run(run_id).info.status == "RUNNING"
    return run_id


class WhoConfig(dg.Config):
    name: str
    wait_for: Optional[str] = None  # a file: the step logs, then waits for it before it logs again


@dg.asset(required_resource_keys={"mlflow"})
def who(config: WhoConfig) -> str:
    """Logs who materialised it, and can wait mid-step: two materialisations in two threads overlap."""
    import time

    mlflow.log_param("who", config.name)
    deadline = time.monotonic() + 120
    while config.wait_for and not Path(config.wait_for).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{config.wait_for} never appeared")
        time.sleep(0.05)
    mlflow.log_metric("done", 1.0)
    return config.name


# -- the other shapes of a Dagster project -----------------------------------------------------------


@dg.op(required_resource_keys={"mlflow"})
def graph_step_one() -> int:
    mlflow.log_param("graph_step_one", 1)
    return 1


@dg.op(required_resource_keys={"mlflow"})
def graph_step_two(value: int) -> int:
    mlflow.log_param("graph_step_two", value + 1)
    return value + 1


@dg.graph_asset
def graph_backed() -> int:
    return graph_step_two(graph_step_one())


@dg.multi_asset(specs=[dg.AssetSpec("left"), dg.AssetSpec("right")], required_resource_keys={"mlflow"})
def left_and_right():
    mlflow.log_param("multi", "both")
    yield dg.MaterializeResult(asset_key="left")
    yield dg.MaterializeResult(asset_key="right")


PARTITIONS = dg.StaticPartitionsDefinition(["p1", "p2"])


@dg.asset(partitions_def=PARTITIONS, required_resource_keys={"mlflow"})
def by_partition(context: dg.AssetExecutionContext) -> str:
    mlflow.log_param("partition", context.partition_key)
    return context.partition_key


UNPARTITIONED = ["fluent_logging", "autologged", "seed_style", "graph_backed", "left", "right"]

defs = dg.Definitions(
    assets=[fluent_logging, autologged, seed_style, who, graph_backed, left_and_right, by_partition],
    jobs=[
        two_ops,
        dg.define_asset_job("fluent_assets", selection=UNPARTITIONED),
        dg.define_asset_job("partitioned", selection=["by_partition"], partitions_def=PARTITIONS),
    ],
    resources={"mlflow": MlflowRun()},  # the key stock dagster-mlflow's ops ask for
)
