"""A small graph for testing the MLflow binding: four root assets that start together.

Under the multiprocess executor their steps bind to MLflow at the same moment, which
is where "search for the run, create it if missing" creates two runs.
"""

import time
from pathlib import Path
from typing import Optional

import dagster as dg

from iris_assets.execution.executor import iris_executor
from iris_assets.project_mlflow import IrisMlflowRun
from iris_assets.tracking import MlflowRun

ROOTS = ["root_a", "root_b", "root_c", "root_d"]


class RootConfig(dg.Config):
    sleep_seconds: float = 0.0
    fail: bool = False
    # When set, the step waits until every root step has reached this point, so
    # they all bind to MLflow at the same moment (a real race, not a hoped-for one).
    barrier_dir: Optional[str] = None


def _wait_for_all_roots(barrier_dir: str, name: str, timeout: float = 60.0) -> None:
    folder = Path(barrier_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).touch()
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < len(ROOTS):
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {sorted(p.name for p in folder.iterdir())} reached {folder}")
        time.sleep(0.002)


def _root_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name)
    def _root(config: RootConfig, mlflow: MlflowRun) -> str:
        if config.barrier_dir:
            _wait_for_all_roots(config.barrier_dir, name)
        time.sleep(config.sleep_seconds)
        if config.fail:
            raise RuntimeError(f"{name} fails on purpose")
        mlflow.log_metrics({name: 1.0})
        return mlflow.run_id

    return _root


defs = dg.Definitions(
    assets=[_root_asset(name) for name in ROOTS],
    jobs=[dg.define_asset_job("parallel_roots", selection="*")],
    resources={"mlflow": IrisMlflowRun()},
    executor=iris_executor,
)


def parallel_roots() -> dg.JobDefinition:
    return defs.resolve_job_def("parallel_roots")


def multiprocess_config(max_concurrent: int = 4) -> dict:
    """Forkserver with this module preloaded: step processes start in milliseconds."""
    return {
        "execution": {
            "config": {
                "multiprocess": {
                    "max_concurrent": max_concurrent,
                    "start_method": {"forkserver": {"preload_modules": [__name__, "mlflow"]}},
                }
            }
        }
    }


def roots_config(**per_root: dict) -> dict:
    return {"ops": {name: {"config": config} for name, config in per_root.items()}}


def racing_roots_config(barrier_dir: str) -> dict:
    return roots_config(**{name: {"barrier_dir": barrier_dir} for name in ROOTS})
