"""9. Runs started by a code server: run workers forked from a preloaded forkserver / spawned.

Two dagster-webservers (workspace.yaml; each starts its own code server), each on
fresh stores and launching at once (DefaultRunCoordinator): one as shipped, one
with ``IRIS_RUN_WORKER_START=spawn`` (Dagster's own way: a new interpreter per run).
A and B: "Materialize all" through the GraphQL API (the UI's mutation) until the run
ends. Each side's first run is a warm-up, not counted: on the forked side it also
starts the forkserver, a cost paid once per code server.
"""

import time

from benchmarks.harness import Row, Templates, interleave
from iris_harness.graphql_client import materialize_all
from iris_harness.processes import Service, free_port, stop_all, wait_for_http

SIDES = {"forked": {}, "spawned": {"IRIS_RUN_WORKER_START": "spawn"}}


def run(templates: Templates, repetitions: int) -> list[Row]:
    ports: dict[str, int] = {}
    services: list[Service] = []
    try:
        for side, extra in SIDES.items():
            folder, env = templates.fresh()
            with open(folder / "dagster_home" / "dagster.yaml", "a") as config:
                config.write(
                    "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
                )
            ports[side] = port = free_port()
            command = ["dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
            service = Service(f"webserver-{side}", command, folder, {**env, **extra})
            services.append(service)
            wait_for_http(f"http://127.0.0.1:{port}/server_info", service, timeout=120)
            _materialized(port, service)  # warm-up

        by_side = dict(zip(SIDES, services, strict=True))

        def launched(side: str):
            def once() -> float:
                start = time.perf_counter()
                _materialized(ports[side], by_side[side])
                return time.perf_counter() - start

            return once

        samples = interleave(repetitions, {side: launched(side) for side in SIDES})
    finally:
        stop_all(services)
    return [
        Row(
            "9. Run start",
            '"Materialize all" through the webserver, run worker forked from the code server\'s preloaded '
            "forkserver / spawned (Dagster's default), wall time until the run ends",
            samples["forked"],
            samples["spawned"],
        )
    ]


def _materialized(port: int, service: Service) -> None:
    run_id, status = materialize_all(port)
    if status != "SUCCESS":
        raise RuntimeError(f"run {run_id} ended {status}:\n{service.log()[-3000:]}")
