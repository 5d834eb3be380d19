"""Measuring side by side: interleaved repetitions, medians, spreads, ratios, peak memory.

The machine is shared and noisy, so no figure is an absolute time: each is the
ratio of two medians taken from repetitions of A and B interleaved (ABAB...), so
a burst of load from elsewhere slows both sides instead of one.
"""

import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Optional

from iris_harness.environment import BIN, QUIET_ENV, REPO_ROOT

# Every process a benchmark starts: quiet, and `-m benchmarks.empty_definitions` loads
# from the repository as `-m iris_assets` does.
BENCH_ENV = {**QUIET_ENV, "PYTHONPATH": str(REPO_ROOT)}


@dataclass
class Sample:
    """Repetitions of one measured thing."""

    name: str
    values: list[float] = field(default_factory=list)
    unit: str = "s"

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.values), max(self.values)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.values)
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


@dataclass
class Row:
    """One line of the table: ``a`` measured against ``b``, ratio = median(a) / median(b)."""

    section: str
    figure: str
    a: Sample
    b: Sample
    goal: Optional[str] = None  # e.g. "<= 1.15"
    note: str = ""
    ratio_override: Optional[float] = None  # for figures where "faster" is the ratio b/a

    @property
    def ratio(self) -> float:
        if self.ratio_override is not None:
            return self.ratio_override
        return self.a.median / self.b.median

    @property
    def met(self) -> Optional[bool]:
        if self.goal is None:
            return None
        operator, bound = self.goal.split()
        return self.ratio <= float(bound) if operator == "<=" else self.ratio >= float(bound)


def interleave(repetitions: int, measures: dict[str, Callable[[], float]]) -> dict[str, Sample]:
    """Run each measure once per round, rotating who goes first (AB, BA, ...)."""
    samples = {name: Sample(name) for name in measures}
    names = list(measures)
    for round_ in range(repetitions):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].values.append(measures[name]())
    return samples


class PeakRss:
    """Peak of the summed RSS of a process and all its descendants, sampled every ``interval`` s.

    Sampling misses peaks shorter than the interval; a tree sum double-counts pages
    shared between processes (forked workers), which is what `ps` would show too.
    """

    def __init__(self, pid: int, interval: float = 0.05):
        import psutil

        self._root = psutil.Process(pid)
        self._interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            try:
                processes = [self._root, *self._root.children(recursive=True)]
            except psutil.Error:
                break
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self._interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Timed:
    seconds: float
    peak_rss: int
    stdout: str


def run_timed(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600, log: Optional[Path] = None
) -> Timed:
    """Wall time of one command in a fresh process, and the peak RSS of its process tree.
    Its output goes to ``log`` (default: ``stdout.log`` in ``cwd``)."""
    log = log or cwd / "stdout.log"
    with open(log, "w") as out:
        start = time.perf_counter()
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        memory = PeakRss(process.pid)
        try:
            code = process.wait(timeout=timeout)
        finally:
            peak = memory.stop()
        seconds = time.perf_counter() - start
    output = log.read_text(errors="replace")
    if code != 0:
        raise RuntimeError(f"{args} exited {code}:\n{output[-4000:]}")
    return Timed(seconds, peak, output)


def pipeline_runs(
    templates: "Templates",
    commands: dict[str, list[str]],
    repetitions: int,
    extra_env: Optional[dict[str, str]] = None,
    timeout: float = 600,
) -> tuple[dict[str, Sample], dict[str, Sample]]:
    """Each command run ``repetitions`` times, interleaved, each time in a fresh process on fresh stores, and
    required to end with a FINISHED summary: its wall times and its process tree's peak RSS (MiB), by name."""
    from iris_assets.runs.summary import reports_success

    memory = {name: Sample(name, unit="MiB") for name in commands}

    def measure(name: str) -> Callable[[], float]:
        def once() -> float:
            folder, env = templates.fresh()
            timed = run_timed(commands[name], folder, {**env, **(extra_env or {})}, timeout=timeout)
            if not reports_success(timed.stdout):
                raise RuntimeError(f"{name}: no FINISHED summary\n{timed.stdout[-4000:]}")
            memory[name].values.append(timed.peak_rss / 2**20)
            return timed.seconds

        return once

    return interleave(repetitions, {name: measure(name) for name in commands}), memory


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "IRIS_", "DAGSTER_"))}
    return {**env, **BENCH_ENV, **extra}


class Templates:
    """Empty, already-initialised stores, copied for each repetition.

    Every repetition starts from fresh, empty stores, as the issue asks, but not
    from *uncreated* ones: creating a sqlite MLflow store runs its alembic
    migrations (~10 s here), a one-time cost that would swamp what is measured.
    """

    def __init__(self, root: Path):
        self.root = root
        self.mlflow_db = root / "template-mlflow.db"
        self.dagster_home = root / "template-dagster-home"
        env = base_env()
        subprocess.run(
            [
                str(BIN / "python"),
                "-c",
                "import sys; from mlflow import MlflowClient; MlflowClient(sys.argv[1]).search_experiments()",
                f"sqlite:///{self.mlflow_db}",
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        self.dagster_home.mkdir()
        (self.dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        subprocess.run(
            [
                str(BIN / "python"),
                "-c",
                "import dagster as dg; i = dg.DagsterInstance.get(); "
                "i.get_runs(limit=1); i.get_latest_materialization_event(dg.AssetKey('x')); "
                "i.all_instigator_state()",
            ],
            env={**env, "DAGSTER_HOME": str(self.dagster_home)},
            check=True,
            capture_output=True,
        )

    def fresh(self) -> tuple[Path, dict[str, str]]:
        """A new folder with copies of the empty stores, and the environment pointing at them."""
        folder = Path(tempfile.mkdtemp(dir=self.root, prefix="rep-"))
        state = folder / "state"
        state.mkdir()
        shutil.copy(self.mlflow_db, state / "mlflow.db")
        shutil.copytree(self.dagster_home, folder / "dagster_home")
        return folder, base_env(
            IRIS_STATE_DIR=str(state),
            DAGSTER_HOME=str(folder / "dagster_home"),
            MLFLOW_TRACKING_URI=f"sqlite:///{state / 'mlflow.db'}",
        )


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages = ["dagster", "dagster-mlflow", "mlflow", "scikit-learn", "skl2onnx", "onnxruntime", "numpy"]
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "memory": f"{_mem_total_gib():.1f} GiB",
        "python": platform.python_version(),
        "os": platform.platform(),
        "packages": ", ".join(f"{p} {version(p)}" for p in packages),
    }


def _mem_total_gib() -> float:
    try:
        import psutil

        return psutil.virtual_memory().total / 2**30
    except ImportError:
        return float("nan")
