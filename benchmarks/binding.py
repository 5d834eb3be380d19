"""3. Binding cost as the experiment grows, and the tracking requests of a step and of a materialisation.

A one-asset probe job binds to its MLflow run (the first use of the ``mlflow``
resource, timed inside the step) and ends it (the resource's teardown, timed by a
subclass), in experiments that already hold 0, 1,000 and 10,000 runs: on the
embedded sqlite store and on an ``mlflow server`` backed by PostgreSQL. The sizes
are interleaved round by round in one warm process, so each ratio compares a large
experiment with the empty one under the same conditions.

The earlier runs are written straight into the store's tables in bulk (writing
10,000 runs through the API would take many minutes), each shaped like a real
pipeline run: its tags (``dagster_run_id``...), six params and four metrics.

On the server, the requests one probe step makes (bind, a metric through the resource,
a param through MLflow's fluent API, the end) are counted from its access log for each
size: users of stock dagster-mlflow hit a server's rate limit with parallel ops, and a
count that grew with the experiment would be that defect.
"""

import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import dagster as dg
from mlflow import log_param

from benchmarks.harness import Row, Sample, Templates, interleave, run_timed
from iris_assets.tracking import MlflowRun

_BIND_SECONDS: list[float] = []
_END_SECONDS: list[float] = []


class TimedMlflowRun(MlflowRun):
    """The project's resource, with its teardown (ending the MLflow run) timed."""

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        start = time.perf_counter()
        super().teardown_after_execution(context)
        _END_SECONDS.append(time.perf_counter() - start)


@dg.asset
def probe(mlflow: MlflowRun) -> None:
    start = time.perf_counter()
    _ = mlflow.run_id  # the first use binds: experiment, election, run
    _BIND_SECONDS.append(time.perf_counter() - start)
    # What a step logs, both ways: the resource's call and MLflow's fluent one, into the same run.
    mlflow.log_metrics({"probe": 1.0})
    log_param("probe", "fluent")


def seed(tracking_uri: str, experiment_name: str, count: int, artifact_root: str) -> None:
    """An experiment holding ``count`` finished pipeline-like runs, inserted in bulk."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from sqlalchemy import insert

    store = SqlAlchemyStore(tracking_uri, artifact_root)
    experiment_id = store.create_experiment(experiment_name, artifact_location=f"{artifact_root}/{experiment_name}")
    now = int(time.time() * 1000)
    for start in range(0, count, 1000):
        runs, tags, params, metrics = [], [], [], []
        for i in range(start, min(count, start + 1000)):
            run_id, dagster_run = uuid.uuid4().hex, str(uuid.uuid4())
            runs.append(
                dict(
                    run_uuid=run_id,
                    name=f"iris_pipeline-{dagster_run[:8]}",
                    source_type="LOCAL",
                    source_name="dagster",
                    entry_point_name="",
                    user_id="bench",
                    status="FINISHED",
                    start_time=now - 60_000 - i,
                    end_time=now - i,
                    source_version="",
                    lifecycle_stage="active",
                    artifact_uri=f"{artifact_root}/{experiment_name}/{run_id}/artifacts",
                    experiment_id=int(experiment_id),
                )
            )
            for key, value in {
                "dagster_run_id": dagster_run,
                "dagster_run_ids": dagster_run,
                "dagster_job_name": "iris_pipeline",
                "mlflow.runName": f"iris_pipeline-{dagster_run[:8]}",
                "mlflow.source.name": "dagster",
                "metrics_average": "macro",
            }.items():
                tags.append(dict(key=key, value=value, run_uuid=run_id))
            for key, value in {
                "test_size": "0.2",
                "split_random_state": "42",
                "stratified": "True",
                "n_estimators": "100",
                "max_depth": "10",
                "random_state": "42",
            }.items():
                params.append(dict(key=key, value=value, run_uuid=run_id))
            for key in ("accuracy", "precision", "recall", "f1_score"):
                metrics.append(dict(key=key, value=0.9, timestamp=now, step=0, is_nan=False, run_uuid=run_id))
        with store.ManagedSessionMaker() as session:
            for model, rows in (
                (SqlRun, runs),
                (SqlTag, tags),
                (SqlParam, params),
                (SqlMetric, metrics),
                (SqlLatestMetric, metrics),
            ):
                session.execute(insert(model), rows)
    store.engine.dispose()


def bind_rows(
    store_label: str,
    tracking_uri: str,
    sizes: list[int],
    repetitions: int,
    home: Path,
    access_log: Optional[Callable[[], str]] = None,
) -> list[Row]:
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dg.DagsterInstance.local_temp(tempdir=str(home))

    def measure(size: int):
        def once() -> float:
            resource = TimedMlflowRun(experiment_name=f"bench-{size}", mlflow_tracking_uri=tracking_uri)
            result = dg.materialize([probe], instance=instance, resources={"mlflow": resource})
            assert result.success
            return _BIND_SECONDS[-1]

        return once

    for size in sizes:  # warm-up: imports, connections, experiment lookups
        measure(size)()
    _END_SECONDS.clear()
    ends: dict[int, Sample] = {size: Sample(f"end-{size}") for size in sizes}

    def with_end(size: int):
        bind = measure(size)

        def once() -> float:
            seconds = bind()
            ends[size].values.append(_END_SECONDS[-1])
            return seconds

        return once

    binds = interleave(repetitions, {size: with_end(size) for size in sizes})
    empty = sizes[0]
    rows = []
    if access_log is not None:  # one more probe per size, its requests counted
        requests = {}
        for size in sizes:
            before = len(access_log())
            measure(size)()
            time.sleep(1)  # let the server flush its last access lines
            counted = sum(count_requests(access_log()[before:]).values())
            requests[size] = Sample(f"requests-{size}", [float(counted)], unit="requests")
        rows += [
            Row(
                "3. Binding cost",
                f"{store_label}: tracking API requests of one step (bind, log both ways, end), "
                f"{size:,} earlier runs / 0 (access log)",
                requests[size],
                requests[empty],
                goal="<= 1.0" if size == sizes[-1] else None,
            )
            for size in sizes[1:]
        ]
    for size in sizes[1:]:
        goal = "<= 1.2" if size == sizes[-1] else None
        rows.append(
            Row(
                "3. Binding cost",
                f"{store_label}: bind a step to its MLflow run, {size:,} earlier runs / 0",
                binds[size],
                binds[empty],
                goal=goal,
            )
        )
    for size in sizes[1:]:
        rows.append(
            Row(
                "3. Binding cost",
                f"{store_label}: end the MLflow run at teardown, {size:,} earlier runs / 0",
                ends[size],
                ends[empty],
            )
        )
    return rows


REQUEST_LINE = re.compile(r'"(GET|POST|PUT|PATCH|DELETE) (\S+) HTTP/[\d.]+" (\d+)')


def endpoint(method: str, path: str) -> str:
    """``POST /api/2.0/mlflow/runs/log-batch``; ids, artifact paths and query strings folded."""
    path = path.split("?")[0]
    if "/mlflow-artifacts/artifacts/" in path:
        path = path.split("/mlflow-artifacts/artifacts/")[0] + "/mlflow-artifacts/artifacts/… (artifact upload)"
    return f"{method} {re.sub(r'm-[0-9a-f]{32}', '{model_id}', path)}"


def count_requests(log_text: str) -> Counter:
    """Requests per endpoint in an uvicorn access log."""
    return Counter(endpoint(m.group(1), m.group(2)) for m in REQUEST_LINE.finditer(log_text))


def run(templates: Templates, sizes: list[int], repetitions: int, work_dir: Path) -> tuple[list[Row], dict]:
    from benchmarks.overhead import baseline_command, graph_command
    from iris_harness.topology import Postgres, Topology

    rows: list[Row] = []
    # Embedded store: a copy of the empty template, seeded.
    sqlite_dir = work_dir / "sqlite-store"
    sqlite_dir.mkdir()
    sqlite_uri = f"sqlite:///{sqlite_dir / 'mlflow.db'}"
    import shutil

    shutil.copy(templates.mlflow_db, sqlite_dir / "mlflow.db")
    for size in sizes:
        seed(sqlite_uri, f"bench-{size}", size, (sqlite_dir / "mlartifacts").as_uri())
    rows += bind_rows("embedded sqlite store", sqlite_uri, sizes, repetitions, work_dir / "home-sqlite")

    with ExitStack() as stack:
        # docker-compose.yml's MLflow server (its command, on pgserver's PostgreSQL).
        server_dir = work_dir / "server"
        server_dir.mkdir()
        postgres = Postgres(server_dir)
        stack.callback(postgres.close)
        topology = Topology(server_dir, postgres)
        stack.callback(topology.stop)
        for size in sizes:  # before the server starts: it then finds the tables migrated
            seed(postgres.url("mlflow"), f"bench-{size}", size, "mlflow-artifacts:")
        topology.start_mlflow()
        server, url = topology.services["mlflow"], topology.mlflow_url
        rows += bind_rows(
            "MLflow server on PostgreSQL", url, sizes, repetitions, work_dir / "home-server", access_log=server.log
        )

        # Tracking requests of one whole materialisation, and of the baseline doing the same work.
        requests = {}
        for name, args in (("graph", graph_command()), ("baseline", baseline_command())):
            folder, env = templates.fresh()
            env.update(
                MLFLOW_TRACKING_URI=url,
                IRIS_MLFLOW_EXPERIMENT=f"requests-{name}",
                IRIS_REGISTERED_MODEL=f"requests-{name}",
            )
            before = len(server.log())
            run_timed(args, folder, env)
            time.sleep(1)  # let the server flush its last access lines
            requests[name] = count_requests(server.log()[before:])
    counts = {name: Sample(name, [float(sum(c.values()))], unit="requests") for name, c in requests.items()}
    rows.append(
        Row(
            "3. Binding cost",
            "tracking API requests of one whole materialisation / plain script (MLflow server access log)",
            counts["graph"],
            counts["baseline"],
        )
    )
    return rows, requests
