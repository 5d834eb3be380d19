"""Where the test suite's CPU goes: each process's CPU time, by test module and by kind of process.

    .venv/bin/python -m benchmarks.suite_cpu [pytest arguments]   # e.g. -n 3 --dist loadscope

Runs pytest with this module as a plugin (it records when each test ran, and on which
xdist worker) while a thread samples ``/proc`` every half second (each process's CPU
time, parent and command line). Each process's CPU is then charged to the test its
worker was running at the time (services a test starts are that worker's
descendants), and to a kind of process read off its command line. Processes that live
less than half a second are missed, and what a process does between its last sample
and its exit: a profile of where to look, not an exact account.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TIMELINE_ENV = "IRIS_SUITE_CPU_TIMELINE"
KINDS = [  # (a part of the command line, the kind of process), first match wins
    ("multiprocessing.forkserver", "forkserver and what it forked (run workers, multiprocess steps)"),
    ("multiprocessing.spawn", "spawned (MLflow server workers, test helpers)"),
    ("dagster-daemon", "dagster-daemon"),
    ("dagster-webserver", "dagster-webserver"),
    ("api grpc", "code server (dagster api grpc)"),
    ("code-server", "code server (dagster code-server start)"),
    ("uvicorn", "mlflow server"),
    ("mlflow server", "mlflow server"),
    ("celery", "celery worker"),
    ("job execute", "dagster job execute"),
    ("asset materialize", "dagster asset materialize"),
    ("beam.smp", "rabbitmq"),
    ("weed", "seaweedfs"),
    ("postgres", "postgres"),
    ("chrom", "chromium"),
    ("-m benchmarks", "python -m benchmarks"),
    ("exec(eval(sys.stdin", "pytest (xdist worker)"),
]


# -- the pytest plugin: when each test ran, on which worker --------------------------------------

_started: dict[str, float] = {}
_record = False


def pytest_configure(config):
    global _record  # in the process that runs the tests: an xdist worker, or pytest without xdist
    distributing = bool(getattr(config.option, "numprocesses", None)) and "PYTEST_XDIST_WORKER" not in os.environ
    _record = bool(os.environ.get(TIMELINE_ENV)) and not distributing


def pytest_runtest_logstart(nodeid, location):
    _started[nodeid] = time.time()


def pytest_runtest_logfinish(nodeid, location):
    if _record:
        with open(os.environ[TIMELINE_ENV], "a") as out:
            out.write(json.dumps({"pid": os.getpid(), "test": nodeid, "t0": _started.pop(nodeid), "t1": time.time()}))
            out.write("\n")


# -- sampling /proc ------------------------------------------------------------------------------


class Sampler(threading.Thread):
    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval, self.stop = interval, threading.Event()
        self.processes: dict[tuple[int, int], tuple[int, str]] = {}  # (pid, start) -> (ppid, command)
        self.seen: dict[tuple[int, int], int] = {}
        self.samples: list[tuple[float, int, int, int]] = []  # (time, pid, start, new ticks)

    def run(self) -> None:
        baseline = True  # what processes already running had used is not the suite's
        while not self.stop.wait(self.interval):
            now = time.time()
            for name in os.listdir("/proc"):
                if name.isdigit():
                    self._sample(int(name), now, baseline)
            baseline = False

    def _sample(self, pid: int, now: float, baseline: bool) -> None:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ppid, ticks, start = int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19])
            key = (pid, start)
            if key not in self.processes:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                self.processes[key], self.seen[key] = (ppid, command), ticks if baseline else 0
        except (OSError, ValueError, IndexError):
            return  # gone meanwhile
        if ticks > self.seen[key]:
            self.samples.append((now, pid, start, ticks - self.seen[key]))
            self.seen[key] = ticks


def kind(command: str) -> str:
    return next((name for part, name in KINDS if part in command), command.split(" ")[0].rsplit("/", 1)[-1] or "?")


def report(sampler: Sampler, timeline: list[dict]) -> str:
    hertz = os.sysconf("SC_CLK_TCK")
    latest = {pid: key for key in sorted(sampler.processes, key=lambda k: k[1]) for pid in [key[0]]}
    runs_by_worker = collections.defaultdict(list)
    for entry in timeline:
        runs_by_worker[entry["pid"]].append(entry)

    def worker_of(key: tuple[int, int]) -> int | None:
        for _ in range(64):
            if key[0] in runs_by_worker:
                return key[0]
            parent = sampler.processes.get(key, (0, ""))[0]
            if parent <= 1 or parent not in latest:
                return None
            key = latest[parent]
        return None

    by_module: dict[str, float] = collections.defaultdict(float)
    by_kind: dict[str, float] = collections.defaultdict(float)
    for at, pid, start, ticks in sampler.samples:
        seconds, key = ticks / hertz, (pid, start)
        worker = worker_of(key)
        test = "outside the tests"
        if worker is not None:
            test = next((r["test"] for r in runs_by_worker[worker] if r["t0"] - 1 <= at <= r["t1"] + 1), "collection")
        by_module[test.split("::")[0]] += seconds
        by_kind[kind(sampler.processes[key][1])] += seconds
    total = sum(by_kind.values())
    lines = [f"CPU seconds sampled: {total:.0f}", "", "by test module:"]
    lines += [f"{seconds:8.1f}  {module}" for module, seconds in sorted(by_module.items(), key=lambda i: -i[1])]
    lines += ["", "by kind of process:"]
    lines += [f"{seconds:8.1f}  {name}" for name, seconds in sorted(by_kind.items(), key=lambda i: -i[1])[:25]]
    return "\n".join(lines)


def main(pytest_args: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="iris-suite-cpu-") as folder:
        timeline_path = Path(folder) / "timeline.jsonl"
        env = {**os.environ, TIMELINE_ENV: str(timeline_path)}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent.parent), env.get("PYTHONPATH")]))
        sampler = Sampler()
        sampler.start()
        code = subprocess.call([sys.executable, "-m", "pytest", "-p", "benchmarks.suite_cpu", *pytest_args], env=env)
        sampler.stop.set()
        sampler.join()
        timeline = (
            [json.loads(line) for line in timeline_path.read_text().splitlines()] if timeline_path.exists() else []
        )
    print(report(sampler, timeline))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
