"""The docker-compose topology, without Docker: the same services as local processes.

PostgreSQL (pgserver, or the server at $IRIS_TEST_POSTGRES_URL), an MLflow tracking
server on it serving artifacts, the project's gRPC code server, dagster-webserver
and dagster-daemon, all on 127.0.0.1, with deploy/dagster.yaml and
deploy/workspace.yaml and the commands of docker-compose.yml.
"""

import json
import os
import shutil
import urllib.request

import pytest
import yaml

from iris_assets_tests.conftest import REPO_ROOT
from iris_assets_tests.graphql_client import materialize_all
from iris_assets_tests.mlflow_checks import EXPECTED_ARTIFACTS
from iris_assets_tests.processes import Service, free_port, wait_for_http, wait_until

pytestmark = pytest.mark.servers



@pytest.fixture
def postgres(tmp_path):
    """Two databases on one PostgreSQL server: (dagster URL, mlflow URL, a psycopg2 connect fn)."""
    import psycopg2

    external = os.environ.get("IRIS_TEST_POSTGRES_URL")
    server = None
    if external:
        admin_url = external
    else:
        import pgserver

        server = pgserver.get_server(str(tmp_path / "pgdata"), cleanup_mode="stop")
        admin_url = server.get_uri()
    suffix = tmp_path.name.replace("-", "_").lower()[-20:]
    names = {"dagster": f"dagster_{suffix}", "mlflow": f"mlflow_{suffix}"}
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        for name in names.values():
            cursor.execute(f"CREATE DATABASE {name}")
    # "+psycopg2" as in docker-compose.yml: SQLAlchemy 2.1 maps postgresql:// to psycopg 3.
    urls = {
        role: _with_database(admin_url, name).replace("postgresql://", "postgresql+psycopg2://", 1)
        for role, name in names.items()
    }
    try:
        yield urls
    finally:
        with admin.cursor() as cursor:
            for name in names.values():
                cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
        if server is not None:
            server.cleanup()


def _with_database(url: str, database: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _compose_command(service: str) -> list[str]:
    """A service's command from docker-compose.yml, with the test's hosts and ports."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return list(compose["services"][service]["command"])


def _rest(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_compose_topology_as_local_processes(tmp_path, postgres, monkeypatch):
    mlflow_port, code_port, web_port = free_port(), free_port(), free_port()
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": postgres["dagster"],
        "DAGSTER_MAX_CONCURRENT_RUNS": "2",
        "IRIS_CODE_SERVER_HOST": "127.0.0.1",
        "IRIS_CODE_SERVER_PORT": str(code_port),
        "MLFLOW_TRACKING_URI": mlflow_url,
        "IRIS_STATE_DIR": str(tmp_path / "state"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    # docker-compose.yml's commands, with 127.0.0.1 and free ports for the service names.
    mlflow_command = [
        arg.replace("--host=0.0.0.0", "--host=127.0.0.1")
        .replace("--port=5000", f"--port={mlflow_port}")
        for arg in _compose_command("mlflow")
        if not arg.startswith(("--backend-store-uri", "--artifacts-destination", "--allowed-hosts"))
    ] + [
        f"--backend-store-uri={postgres['mlflow']}",
        f"--artifacts-destination={tmp_path / 'mlartifacts'}",
        f"--allowed-hosts=127.0.0.1:{mlflow_port},localhost:{mlflow_port}",
    ]
    code_command = _compose_command("code")
    code_command[code_command.index("-h") + 1] = "127.0.0.1"
    code_command[code_command.index("-p") + 1] = str(code_port)
    web_command = _compose_command("webserver")
    web_command[web_command.index("-h") + 1] = "127.0.0.1"
    web_command[web_command.index("-p") + 1] = str(web_port)

    services = []
    try:
        mlflow = Service("mlflow", mlflow_command, tmp_path)
        services.append(mlflow)
        wait_for_http(f"{mlflow_url}/health", mlflow, timeout=120)
        # /health is not enough: the API must accept our Host header too.
        assert "experiments" in _rest(mlflow_url, "/api/2.0/mlflow/experiments/search", {"max_results": 1})

        code = Service("code", code_command, tmp_path)
        services.append(code)
        wait_until(
            lambda: Service("health", ["dagster", "api", "grpc-health-check", "-p", str(code_port), "-h", "127.0.0.1"], tmp_path)
            .process.wait(60) == 0,
            timeout=120,
            what="the code server",
            interval=1,
        )
        webserver = Service("webserver", web_command, tmp_path)
        services.append(webserver)
        daemon = Service("daemon", _compose_command("daemon"), tmp_path)
        services.append(daemon)
        wait_for_http(f"http://127.0.0.1:{web_port}/server_info", webserver)

        run_id, status = materialize_all(web_port, timeout=400)
        assert status == "SUCCESS", daemon.log()[-3000:] + code.log()[-3000:]

        # MLflow's REST API: exactly one FINISHED run for this Dagster run, every artifact served.
        experiment = _rest(mlflow_url, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=relatorio-II-iris-pipeline")
        runs = _rest(
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
    finally:
        for service in reversed(services):
            service.stop()

    # Dagster's run storage is the PostgreSQL database.
    import psycopg2

    with psycopg2.connect(postgres["dagster"].replace("+psycopg2", "", 1)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cursor.fetchone() == ("SUCCESS",)
        cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))
        assert cursor.fetchone()[0] > 10
    assert not (home / "history").exists() and not (home / "schedules").exists()  # no sqlite stores
