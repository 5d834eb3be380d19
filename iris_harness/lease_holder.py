"""A process that holds a step's lease as a Celery worker's step would, for the lease tests.

    python -m iris_harness.lease_holder RUN_ID STEP_KEY

prints ``held <holder>`` (or ``refused <holder>`` when a live worker holds it), then holds it
until killed; should the lease be taken over, prints ``lost <new holder>``. Reads
``DAGSTER_POSTGRES_URL`` like a worker.
"""

from __future__ import annotations

import subprocess
import sys
import time

from iris_assets.execution.leases import step_lease


def main(run_id: str, step_key: str) -> None:
    with step_lease(run_id, step_key, on_lost=lambda holder: print(f"lost {holder}", flush=True)) as (lease, held_by):
        print(f"refused {held_by}" if held_by else f"held {lease.holder}", flush=True)
        time.sleep(600)


def start(run_id: str, step_key: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A holder process and its first line, once it has the lease (or was refused it)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "iris_harness.lease_holder", run_id, step_key],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
