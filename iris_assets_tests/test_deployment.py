"""The docker-compose topology, without Docker: the same services as local processes.

See iris_assets_tests/topology.py: PostgreSQL, an MLflow server on it serving
artifacts, the gRPC code server, dagster-webserver and dagster-daemon on 127.0.0.1,
with deploy/dagster.yaml, deploy/workspace.yaml and docker-compose.yml's commands.
"""

import urllib.request

import pytest

from iris_assets_tests.graphql_client import materialize_all
from iris_assets_tests.mlflow_checks import EXPECTED_ARTIFACTS
from iris_assets_tests.topology import Postgres, Topology, rest

pytestmark = pytest.mark.servers


@pytest.fixture
def topology(tmp_path, monkeypatch):
    postgres = Postgres(tmp_path)
    topology = Topology(tmp_path, postgres)
    for key, value in topology.env.items():
        monkeypatch.setenv(key, value)
    try:
        yield topology.start()
    finally:
        topology.stop()
        postgres.close()


def test_compose_topology_as_local_processes(topology):
    mlflow_url = topology.mlflow_url
    run_id, status = materialize_all(topology.web_port, timeout=400)
    assert status == "SUCCESS", topology.logs()

    # MLflow's REST API: exactly one FINISHED run for this Dagster run, every artifact served.
    experiment = rest(mlflow_url, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=relatorio-II-iris-pipeline")
    runs = rest(
        mlflow_url,
        "/api/2.0/mlflow/runs/search",
        {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 100},
    )["runs"]
    assert len(runs) == 1
    (run,) = runs
    assert run["info"]["status"] == "FINISHED"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["dagster_run_id"] == run_id
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:")  # served by the server
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_url)

    def listed(path=None):
        out = set()
        for item in client.list_artifacts(run["info"]["run_id"], path):
            out |= listed(item.path) if item.is_dir else {item.path}
        return out

    assert listed() == EXPECTED_ARTIFACTS
    onnx = urllib.request.urlopen(
        f"{mlflow_url}/get-artifact?path=onnx_model/iris_random_forest.onnx&run_uuid={run['info']['run_id']}",
        timeout=30,
    ).read()
    import onnx as onnx_lib

    assert onnx_lib.load_from_string(onnx).producer_name == "skl2onnx"
    topology.stop()

    # Dagster's run storage is the PostgreSQL database.
    assert topology.postgres.query("dagster", "SELECT status FROM runs WHERE run_id = %s", (run_id,)) == [("SUCCESS",)]
    ((events,),) = topology.postgres.query("dagster", "SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))
    assert events > 10
    assert not (topology.home / "history").exists() and not (topology.home / "schedules").exists()  # no sqlite stores
