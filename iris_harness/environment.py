"""Where things are, and the environment every process the tests and benchmarks start gets."""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Nothing under the home folder, nothing sent anywhere (as scripts/env.sh).
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DAGSTER_DISABLE_TELEMETRY": "yes",
    "ORT_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "GIT_PYTHON_REFRESH": "quiet",
}

# What the test suite's own processes use: a short outage limit (IRIS_OUTAGE_LIMIT_SECONDS),
# so a test of a server that never answers waits seconds, and a gRPC deadline for a loaded machine. Services the harness starts
# derive their own values from their environment (processes.Service).
TEST_ENV = {
    "IRIS_OUTAGE_LIMIT_SECONDS": "5",
    # Three suites' servers share 2 cores in CI (load average ~8): a code server's StartRun
    # then takes past Dagster's 60 s gRPC deadline and the daemon drops the queued run.
    "DAGSTER_GRPC_TIMEOUT_SECONDS": "180",
}


def run_cli(
    *args: str, expect_ok: bool = True, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a command of this environment (dagster, python, ...) with this process's environment,
    in ``cwd`` (default: this process's; `dg` needs the project's, REPO_ROOT)."""
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or os.getcwd(),
        env=os.environ.copy(),
    )
    if expect_ok and result.returncode != 0:
        raise AssertionError(
            f"{args} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n"
            f"--- stderr\n{result.stderr[-8000:]}"
        )
    return result
