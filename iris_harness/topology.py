"""The docker-compose topology, without Docker: the same services as local processes.

PostgreSQL (pgserver, or the server at $IRIS_TEST_POSTGRES_URL), an MLflow tracking
server on it serving artifacts, the project's gRPC code server, dagster-webserver
and dagster-daemon, all on 127.0.0.1, with deploy/dagster.yaml and
deploy/workspace.yaml and the commands of docker-compose.yml. Used by the
deployment test and by the reliability suite, which stops and restarts its parts.
"""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

from iris_harness.environment import REPO_ROOT
from iris_harness.processes import Service, free_port, stop_all, wait_for_http, wait_until


class Postgres:
    """A PostgreSQL server and one role owning the databases the services use.

    The role logs in with ``password`` (the URLs carry it, as in production) so the
    reliability suite can look for it where it must never appear.
    """

    def __init__(self, folder: Path, password: str = "iris-test-password", tcp: bool = False):
        import psycopg2

        self.external = os.environ.get("IRIS_TEST_POSTGRES_URL")
        self.server = None
        self.tcp_server: TcpPostgresServer | None = None
        if self.external:
            self.admin_url = self.external
        elif tcp:  # what other machines would need: a TCP listener (pgserver's own is a Unix socket)
            self.tcp_server = TcpPostgresServer(folder)
            self.admin_url = self.tcp_server.admin_url
        else:
            import pgserver

            # Not under pytest's temporary folder: each pytest session resets that
            # folder's permissions to its owner only, and PostgreSQL (run as its own
            # user when we are root) then loses its data directory mid-test.
            self._pgdata = Path(tempfile.mkdtemp(prefix="iris-pgdata-"))
            self.server = pgserver.get_server(str(self._pgdata), cleanup_mode="stop")
            self.admin_url = self.server.get_uri()
        self.suffix = folder.name.replace("-", "_").lower()[-20:]
        self.role, self.password = f"iris_{self.suffix}", password
        self.databases = {"dagster": f"dagster_{self.suffix}", "mlflow": f"mlflow_{self.suffix}"}
        self._admin = psycopg2.connect(self.admin_url)
        self._admin.autocommit = True
        with self._admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {self.role} LOGIN PASSWORD %s", (password,))
            for name in self.databases.values():
                cursor.execute(f"CREATE DATABASE {name} OWNER {self.role}")

    def url(self, role: str) -> str:
        """SQLAlchemy URL of a database, as the role; "+psycopg2" as in docker-compose.yml
        (SQLAlchemy 2.1 maps postgresql:// to psycopg 3)."""
        parts = urlsplit(self.admin_url)
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{self.role}:{quote(self.password, safe='')}@{host}"
        url = urlunsplit(parts._replace(netloc=netloc, path=f"/{self.databases[role]}"))
        return url.replace("postgresql://", "postgresql+psycopg2://", 1)

    def restart(self) -> None:
        """A real restart (pgserver), or, on an external server, what clients see of one:
        every connection to our databases cut."""
        if self.server is not None:
            from pgserver._commands import pg_ctl

            pg_ctl(["-w", "restart", "-m", "fast"], pgdata=self.server.pgdata, user=self.server.system_user, timeout=60)
            import psycopg2

            self._admin = psycopg2.connect(self.admin_url)
            self._admin.autocommit = True
            return
        with self._admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ANY(%s)",
                (list(self.databases.values()),),
            )

    def query(self, role: str, sql: str, args: tuple = ()) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(self.url(role).replace("+psycopg2", "", 1)) as connection:
            with connection.cursor() as cursor:
                cursor.execute(sql, args)
                return cursor.fetchall()

    def close(self) -> None:
        import psycopg2

        try:
            if self._admin.closed or self.tcp_server is not None:  # the server may have restarted since
                self._admin.close()
                self._admin = psycopg2.connect(self.admin_url)
                self._admin.autocommit = True
            with self._admin.cursor() as cursor:
                for name in self.databases.values():
                    cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                cursor.execute(f"DROP ROLE IF EXISTS {self.role}")
            self._admin.close()
        finally:
            if self.server is not None:
                self.server.cleanup()
                shutil.rmtree(self._pgdata, ignore_errors=True)
            if self.tcp_server is not None:
                self.tcp_server.stop()


class TcpPostgresServer:
    """PostgreSQL from pgserver's bundled binaries, listening on 127.0.0.1 and a free port.

    (As root it runs as pgserver's own system user: PostgreSQL refuses root.)
    """

    def __init__(self, folder: Path):
        import pwd

        import pgserver

        binaries = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self.port = free_port()
        self._data = Path(tempfile.mkdtemp(prefix="iris-pgdata-tcp-"))  # outside pytest's folder (see Postgres)
        user = None
        if os.geteuid() == 0:
            user = "pgserver"
            try:
                pwd.getpwnam(user)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
            shutil.chown(self._data, user, user)
        subprocess.run(
            [str(binaries / "initdb"), "-D", str(self._data / "db"), "-U", "postgres", "--auth=trust", "-E", "utf8"],
            check=True,
            capture_output=True,
            user=user,
        )
        self._command = [
            str(binaries / "postgres"),
            "-D",
            str(self._data / "db"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self._data),
            "-c",
            "max_connections=300",
        ]
        self._folder, self._user = folder, user
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def start(self) -> None:
        """The server (again, on the same data and port), once it accepts connections."""
        import psycopg2

        self.service = Service("postgres", self._command, self._folder, user=self._user)

        def accepts() -> bool:
            try:
                psycopg2.connect(self.admin_url).close()
                return True
            except psycopg2.OperationalError:
                if self.service.process.poll() is not None:
                    raise RuntimeError(f"postgres exited:\n{self.service.log()[-3000:]}") from None
                return False

        wait_until(accepts, timeout=60, what="PostgreSQL over TCP", interval=0.1)

    def stop_server(self) -> None:
        """A fast shutdown (SIGINT), keeping the data: what clients see of a restart or failover."""
        self.service.stop()

    def stop(self) -> None:
        self.service.stop()
        shutil.rmtree(self._data, ignore_errors=True)


def compose_command(service: str) -> list[str]:
    """A service's command from docker-compose.yml."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return list(compose["services"][service]["command"])


def compose_environment(service: str, names: tuple[str, ...]) -> dict[str, str]:
    """Some of a service's environment values from docker-compose.yml (those without substitutions)."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    environment = compose["services"][service]["environment"]
    return {name: str(environment[name]) for name in names}


def rest(base: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


class Topology:
    """docker-compose.yml's services as local processes on 127.0.0.1 and free ports.

    ``instance_yaml`` is merged over deploy/dagster.yaml (the reliability suite
    shortens the daemon's intervals); ``env`` is added to every service's environment.
    """

    def __init__(
        self,
        folder: Path,
        postgres: Postgres,
        env: dict | None = None,
        instance_yaml: dict | None = None,
        mlflow_artifacts: str | None = None,
        mlflow_env: dict | None = None,
    ):
        self.folder, self.postgres = folder, postgres
        # Where the MLflow server keeps artifacts, and what only its environment holds (storage credentials).
        self.mlflow_artifacts = mlflow_artifacts or str(folder / "mlartifacts")
        self.mlflow_env = mlflow_env or {}
        self.mlflow_port, self.code_port, self.web_port = free_port(), free_port(), free_port()
        self.mlflow_url = f"http://127.0.0.1:{self.mlflow_port}"
        self.home = folder / "dagster_home"
        self.home.mkdir()
        config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
        config.update(instance_yaml or {})
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(config))
        self.env = {
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_POSTGRES_URL": postgres.url("dagster"),
            "IRIS_CODE_SERVER_HOST": "127.0.0.1",
            "IRIS_CODE_SERVER_PORT": str(self.code_port),
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "MLFLOW_UI_URL": self.mlflow_url,
            "DAGSTER_UI_URL": f"http://127.0.0.1:{self.web_port}",
            "IRIS_STATE_DIR": str(folder / "state"),
            **(env or {}),
        }
        self.services: dict[str, Service] = {}

    # -- the services ---------------------------------------------------------------------------

    def mlflow_command(self) -> list[str]:
        return [
            arg.replace("--host=0.0.0.0", "--host=127.0.0.1").replace("--port=5000", f"--port={self.mlflow_port}")
            for arg in compose_command("mlflow")
            if not arg.startswith(("--backend-store-uri", "--artifacts-destination", "--allowed-hosts"))
        ] + [
            f"--backend-store-uri={self.postgres.url('mlflow')}",
            f"--artifacts-destination={self.mlflow_artifacts}",
            f"--allowed-hosts=127.0.0.1:{self.mlflow_port},localhost:{self.mlflow_port}",
        ]

    def start_mlflow(self) -> None:
        if "mlflow" in self.services:
            self.services.pop("mlflow").stop()
        env = {**self.env, **self.mlflow_env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no idle job runner
        self.services["mlflow"] = service = Service("mlflow", self.mlflow_command(), self.folder, env)
        wait_for_http(f"{self.mlflow_url}/health", service, timeout=120)
        # /health is not enough: the API must accept our Host header too.
        assert "experiments" in rest(self.mlflow_url, "/api/2.0/mlflow/experiments/search", {"max_results": 1})

    def stop_mlflow(self) -> None:
        self.stop_service("mlflow")

    def start_code(self) -> None:
        """The code server, once its health check passes."""
        code = compose_command("code")
        code[code.index("-h") + 1] = "127.0.0.1"
        code[code.index("-p") + 1] = str(self.code_port)
        self.services["code"] = Service("code", code, self.folder, self.env)
        health = ["dagster", "api", "grpc-health-check", "-p", str(self.code_port), "-h", "127.0.0.1"]
        wait_until(
            lambda: Service("health", health, self.folder, self.env).process.wait(60) == 0,
            timeout=120,
            what="the code server",
            interval=1,
        )

    def start_daemon(self) -> None:
        self.services["daemon"] = Service("daemon", compose_command("daemon"), self.folder, self.env)

    def stop_service(self, name: str) -> None:
        self.services.pop(name).stop()

    def start_webserver(self, wait: bool = True) -> None:
        web = compose_command("webserver")
        web[web.index("-h") + 1] = "127.0.0.1"
        web[web.index("-p") + 1] = str(self.web_port)
        self.services["webserver"] = webserver = Service("webserver", web, self.folder, self.env)
        if wait:
            wait_for_http(f"http://127.0.0.1:{self.web_port}/server_info", webserver)

    def start(self) -> "Topology":
        self.start_mlflow()
        self.start_code()
        self.start_webserver(wait=False)
        self.start_daemon()
        wait_for_http(f"http://127.0.0.1:{self.web_port}/server_info", self.services["webserver"])
        return self

    def take_services(self) -> list[Service]:
        """The running services, handed over to be stopped (with others, in one go)."""
        taken = list(self.services.values())
        self.services.clear()
        return taken

    def stop(self) -> None:
        stop_all(self.take_services())

    def logs(self, limit: int = 3000) -> str:
        return "\n".join(f"--- {name}\n{s.log()[-limit:]}" for name, s in self.services.items())

    # -- reading what they hold -----------------------------------------------------------------

    def instance(self):
        """The deployment's Dagster instance (PostgreSQL storage), as the services see it."""
        import dagster as dg

        saved = {key: os.environ.get(key) for key in ("DAGSTER_HOME", "DAGSTER_POSTGRES_URL")}
        os.environ.update({key: self.env[key] for key in saved})
        try:
            return dg.DagsterInstance.from_config(str(self.home))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def mlflow_client(self):
        from iris_assets.tracking.store import mlflow_client

        return mlflow_client(self.mlflow_url)
