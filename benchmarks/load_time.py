"""2. Load time, and 5. peak memory of the code server.

Loading the code location (``dagster definitions validate -m iris_assets``)
against loading an empty ``Definitions`` module the same way, in the same
environment; then the gRPC code server of each (``dagster code-server start``,
docker-compose.yml's command) until it answers, for its peak memory.
"""

import subprocess
import time

from benchmarks.harness import BIN, PeakRss, Row, Templates, interleave, run_timed

MODULES = {"iris_assets": "iris_assets", "empty": "benchmarks.empty_definitions"}


def validate_command(module: str) -> list[str]:
    return [str(BIN / "dagster"), "definitions", "validate", "-m", module]


def run(templates: Templates, repetitions: int) -> list[Row]:
    def validate(module: str):
        def once() -> float:
            folder, env = templates.fresh()
            return run_timed(validate_command(module), folder, env).seconds

        return once

    load = interleave(repetitions, {name: validate(module) for name, module in MODULES.items()})
    memory = interleave(
        max(1, repetitions // 2),
        {name: lambda module=module: code_server_peak(templates, module) for name, module in MODULES.items()},
    )
    for sample in memory.values():
        sample.unit = "MiB"
    return [
        Row(
            "2. Load time",
            "`dagster definitions validate -m iris_assets` / empty `Definitions`, wall time",
            load["iris_assets"],
            load["empty"],
            goal="<= 1.2",
        ),
        Row(
            "5. Peak memory",
            "code server (`dagster code-server start -m iris_assets`) / empty `Definitions`, "
            "peak RSS of the process tree until it answers",
            memory["iris_assets"],
            memory["empty"],
        ),
    ]


def code_server_peak(templates: Templates, module: str, settle: float = 2.0) -> float:
    """Peak RSS (MiB) of a code server's process tree from start until it answers, plus ``settle`` s."""
    from iris_harness.processes import Service, free_port, wait_until

    folder, env = templates.fresh()
    port = free_port()
    server = Service(
        f"code-server-{module}",
        ["dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(port), "-m", module],
        folder,
        env,
    )
    memory = PeakRss(server.process.pid)
    try:

        def answers() -> bool:
            if server.process.poll() is not None:
                raise RuntimeError(f"code server for {module} exited:\n{server.log()[-3000:]}")
            check = [str(BIN / "dagster"), "api", "grpc-health-check", "-h", "127.0.0.1", "-p", str(port)]
            return subprocess.run(check, env=env, capture_output=True).returncode == 0

        wait_until(answers, timeout=180, what=f"the code server of {module}")
        time.sleep(settle)
    finally:
        peak = memory.stop()
        server.stop()
    return peak / 2**20
