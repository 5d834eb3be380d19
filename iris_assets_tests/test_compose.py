"""docker-compose.yml, checked by Docker Compose itself (Debian's docker-compose, offline).

No Docker engine runs here, so the stack is not started from this file: the same
topology runs as local processes in reliability/test_deployed_faults.py.
"""

import shutil
import subprocess

import pytest
import yaml

from iris_harness.environment import REPO_ROOT

SERVICES = {"postgres", "mlflow", "code", "webserver", "daemon", "rabbitmq", "seaweedfs", "storage-init", "worker"}
PASSWORDS = ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "S3_SECRET_KEY")


def compose(env_file, *args) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is needed (apt-get install docker-compose; scripts/test.sh does it)"
    return subprocess.run(
        [binary, "--project-directory", str(REPO_ROOT), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


@pytest.fixture
def env_file(tmp_path):
    example = (REPO_ROOT / ".env.example").read_text()
    path = tmp_path / ".env"
    for name in PASSWORDS:
        example = example.replace(f"{name}=\n", f"{name}=not-a-real-secret\n")
    path.write_text(example)
    return path


def test_compose_refuses_to_start_without_the_secrets():
    result = compose(REPO_ROOT / ".env.example", "config", "-q")
    assert result.returncode != 0
    assert any(f"set {name} in .env" in result.stderr for name in PASSWORDS), result.stderr
    for name in PASSWORDS:  # no secret is written in the compose file itself
        assert f"${{{name}" in (REPO_ROOT / "docker-compose.yml").read_text(), name


def test_compose_stack(env_file):
    result = compose(env_file, "config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == SERVICES
    assert set(config["volumes"]) >= {"postgres-data", "rabbitmq-data", "seaweedfs-data"}

    # Every published port on 127.0.0.1 only.
    published = [(name, port) for name, service in services.items() for port in service.get("ports", [])]
    assert {name for name, _ in published} == {"mlflow", "webserver"}
    for name, port in published:
        host_ip = port["host_ip"] if isinstance(port, dict) else str(port).split(":")[0]
        assert host_ip == "127.0.0.1", (name, port)

    # Start order through healthchecks.
    for name in ("postgres", "mlflow", "code", "webserver"):
        assert services[name]["healthcheck"]["test"], name
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["code"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["code"]["condition"] == "service_healthy"
    # The dead-run check knows run workers by host: a recreated code container keeps its name.
    assert services["code"]["hostname"] == "code"

    # MLflow on PostgreSQL, serving artifacts, allowing the Host header the others send,
    # and a healthcheck that calls the API (where a wrong Host header gets 403).
    mlflow = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri=postgresql+psycopg2://iris:not-a-real-secret@postgres:5432/mlflow" in mlflow
    assert "--serve-artifacts" in mlflow and "--artifacts-destination=s3://iris/mlartifacts" in mlflow
    # Only the MLflow server holds the bucket's credentials for artifacts; clients go through it.
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
    assert "mlflow:5000" in mlflow.split("--allowed-hosts=")[1].split()[0].split(",")
    assert "/api/2.0/mlflow/" in " ".join(services["mlflow"]["healthcheck"]["test"])

    # Dagster in PostgreSQL; the code location through the gRPC code server; no Docker socket.
    # Workers: one command, nothing that stops `--scale worker=N` (no fixed name, no host port).
    worker = services["worker"]
    assert worker["command"][0] == "iris-worker"
    assert "container_name" not in worker and "ports" not in worker
    assert "consumer_timeout" in services["rabbitmq"]["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
    for name in ("code", "webserver", "daemon", "worker"):
        environment = services[name]["environment"]
        assert environment["IRIS_CELERY_BROKER_URL"].startswith("pyamqp://iris:not-a-real-secret@rabbitmq:5672")
        assert environment["IRIS_ASSET_STORAGE"] == "s3://iris/dagster"
        assert environment["DAGSTER_POSTGRES_URL"].endswith("@postgres:5432/dagster")
        assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert services[name]["build"]["context"] == str(REPO_ROOT)
    for service in services.values():
        for volume in service.get("volumes", []):
            assert "docker.sock" not in str(volume)
    assert "deploy/workspace.yaml" in services["webserver"]["command"]
    assert "deploy/workspace.yaml" in services["daemon"]["command"]


def test_dagster_instance_of_the_stack():
    instance = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    assert instance["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert instance["run_launcher"]["class"] == "DefaultRunLauncher"
    assert instance["telemetry"]["enabled"] is False
    assert instance["concurrency"]["pools"]["default_limit"] == 1  # promotions one at a time


def test_image_uses_the_locked_dependency_set():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml uv.lock" in dockerfile
    assert "uv sync --frozen --no-dev" in dockerfile
    lock = (REPO_ROOT / "uv.lock").read_text()
    for package, version in (("dagster", "1.13.27"), ("dagster-postgres", "0.29.27"), ("dagster-mlflow", "0.29.27")):
        assert f'name = "{package}"\nversion = "{version}"' in lock, package
