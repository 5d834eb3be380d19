"""The README's set-up and first-hour tour, run as written, from a clean clone, in a fresh shell.

The shell commands of the README's "Set up" and "The first hour" sections run in order
in a `git clone` of this repository (its committed state), with none of the project's
variables set (no `source scripts/env.sh`, no DAGSTER_HOME): what a newcomer types.
A command whose comment says "runs until Ctrl-C: URL ..." is started in the background
and waited for until its URLs answer; every other command must exit 0, and when a
```text block follows its block directly, print exactly that. The UI steps themselves
(clicks) are the browser test's. Afterwards the runs are in the clone's own instance
(.iris_state/dagster_home), which the UI the README opens reads: nothing vanished.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from iris_harness.environment import QUIET_ENV, REPO_ROOT

pytestmark = pytest.mark.servers

TOUR_SECTIONS = ("Set up", "The first hour")
SERVER_COMMENT = re.compile(r"#\s*runs until Ctrl-C:(?P<urls>.*)$")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
# What a fresh shell does not have: the project's variables and anything pointing at other state.
PROJECT_VARIABLES = ("DAGSTER_HOME", "IRIS_", "MLFLOW_", "DAGSTER_UI_URL", "AWS_")


@dataclass
class Step:
    command: str
    urls: list[str]  # a server: the URLs that answer once it is up
    expected: Optional[str]  # the ```text block right after, if any


def tour(readme: str) -> list[Step]:
    steps = []
    for section in re.split(r"^## ", readme, flags=re.M):
        if not section.startswith(TOUR_SECTIONS):
            continue
        blocks = list(FENCE.finditer(section))
        for index, block in enumerate(blocks):
            if block.group(1) != "bash":
                continue
            after = blocks[index + 1] if index + 1 < len(blocks) else None
            directly_after = after and not section[block.end() : after.start()].strip() and after.group(1) == "text"
            lines = [line for line in block.group(2).replace("\\\n", " ").splitlines() if line.strip()]
            for number, line in enumerate(lines):
                server = SERVER_COMMENT.search(line)
                urls = re.findall(r"https?://[^\s,)]+", server.group("urls")) if server else []
                last = number == len(lines) - 1
                expected = after.group(2) if directly_after and last and not urls else None
                steps.append(Step(line, urls, expected))
    return steps


def test_the_tour_is_found():
    """The parser sees the README's commands: the set-up, both servers, and the outputs to compare."""
    steps = tour((REPO_ROOT / "README.md").read_text())
    commands = [step.command.split("#")[0].strip() for step in steps]
    assert commands[0] == "bash scripts/run-pipeline.sh"
    assert sum(1 for step in steps if step.urls) >= 2  # iris-ui, mlflow models serve
    assert sum(1 for step in steps if step.expected) >= 2  # iris-predict, the served model
    assert any("iris-sweep launch" in command for command in commands)


@pytest.fixture
def clone(tmp_path) -> Path:
    # Not named after the package (dg would name the code location after the folder) and with
    # a space in its path, as many users' home folders have.
    folder = tmp_path / "my projects" / "iris tour"
    folder.parent.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(folder)], check=True)
    return folder


def _fresh_shell_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PROJECT_VARIABLES)}
    return {**env, **QUIET_ENV}


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def _logs(folder: Path) -> str:
    return "".join(f"--- {log.name} (a server)\n{log.read_text()[-3000:]}\n" for log in sorted(folder.iterdir()))


# The one line a terminal run ends with, as the README shows it after its `dg launch -c` step: every
# value compared with what the tour printed but the MLflow run's id, which no two runs share.
SUMMARY_BLOCK = re.compile(r"^```text\n(MLflow run \S+ FINISHED: .*)\n```$", re.M)
SUMMARY_COMMAND = "dg launch --job iris_pipeline -c examples/small_forest.yaml"
RUN_ID = re.compile(r"^MLflow run \S+ ")


def test_the_readme_tour_works_as_written_from_a_clean_clone(clone, tmp_path, monkeypatch):
    readme = (clone / "README.md").read_text()
    steps = tour(readme)
    (shown_summary,) = SUMMARY_BLOCK.findall(readme)
    printed: dict[str, str] = {}
    env = _fresh_shell_environment()
    servers: dict[str, subprocess.Popen] = {}
    logs = tmp_path / "logs"
    logs.mkdir()
    try:
        for number, step in enumerate(steps):
            for command, server in servers.items():  # a server that stopped would leave the next step to another
                assert server.poll() is None, f"README server exited ({server.returncode}): {command}\n{_logs(logs)}"
            if step.urls:
                if step.command in servers:
                    continue  # the same server, started earlier in the page
                log = open(logs / f"{number}.log", "wb")
                servers[step.command] = subprocess.Popen(
                    ["bash", "-c", step.command], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
                deadline = time.monotonic() + 300
                while not all(_answers(url) for url in step.urls):
                    assert servers[step.command].poll() is None, (
                        f"README command exited: {step.command}\n{(logs / f'{number}.log').read_text()[-4000:]}"
                    )
                    assert time.monotonic() < deadline, f"{step.urls} did not answer: {step.command}"
                    time.sleep(1)
                continue
            result = subprocess.run(
                ["bash", "-c", step.command], cwd=clone, env=env, capture_output=True, text=True, timeout=900
            )
            assert result.returncode == 0, (
                f"README command failed ({result.returncode}): {step.command}\n"
                f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-5000:]}\n{_logs(logs)}"
            )
            if step.expected is not None:
                assert result.stdout.strip() == step.expected.strip(), f"README output drifted: {step.command}"
            assert "Traceback" not in result.stderr, f"{step.command} printed a traceback:\n{result.stderr[-3000:]}"
            printed[step.command] = result.stderr
            assert "Warning" not in result.stderr, f"{step.command} printed a warning:\n{result.stderr[-3000:]}"
    finally:
        for server in servers.values():
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGINT)
        for server in servers.values():
            try:
                server.wait(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    # The summary line the README shows is the one its `dg launch -c` step ended with.
    (command,) = [command for command in printed if SUMMARY_COMMAND in command]
    last = printed[command].strip().splitlines()[-1]
    summary = last[last.index("MLflow run ") :] if "MLflow run " in last else last
    assert RUN_ID.sub("MLflow run <id> ", summary) == RUN_ID.sub("MLflow run <id> ", shown_summary), (
        f"README output drifted: {command}\nprinted: {summary}\nshown:   {shown_summary}"
    )

    # Ctrl-C stopped every server the page starts, and what they started (iris-ui's two UIs).
    for step in steps:
        for url in step.urls:
            assert not _answers(url), f"{url} still answers after Ctrl-C to: {step.command}"

    # Nothing vanished: the terminal's runs are in the clone's own instance, the one the UI reads.
    import dagster as dg

    home = clone / ".iris_state" / "dagster_home"
    assert not list(clone.glob(".tmp_dagster_home_*"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
    assert sum(1 for run in runs if run.job_name == "iris_pipeline" and run.status == dg.DagsterRunStatus.SUCCESS) >= 2


def test_a_cli_run_without_dagster_home_outside_the_root_is_refused_in_one_line(tmp_path):
    """Away from the repository's .env, with no DAGSTER_HOME, a run would go to a temporary
    instance: it is refused before anything runs, in one line that says what to do."""
    from iris_harness.environment import BIN

    env = {**_fresh_shell_environment(), "IRIS_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run(
        [str(BIN / "dg"), "launch", "--job", "iris_pipeline", "-m", "iris_assets"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    refusal = [line for line in result.stderr.splitlines() if "DAGSTER_HOME" in line]
    assert len(refusal) == 1 and "temporary Dagster instance" in refusal[0] and "repository root" in refusal[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "state" / "mlflow.db").exists()  # nothing ran
    assert not list(tmp_path.glob(".tmp_dagster_home_*"))
