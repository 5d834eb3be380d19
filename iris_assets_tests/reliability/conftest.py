"""The reliability suite: faults, concurrency, bad input and secrets (marker ``reliability``).

Run it alone with ``bash scripts/test.sh -m reliability``. Each fault case runs
``IRIS_RELIABILITY_REPEAT`` times (default 1, as in CI); with
``IRIS_RELIABILITY_REPORT=RELIABILITY.md`` the session writes the table of cases,
repetitions and measured outcomes to that file:

    IRIS_RELIABILITY_REPEAT=5 IRIS_RELIABILITY_REPORT=RELIABILITY.md bash scripts/test.sh -m reliability
"""

import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import pytest

REPEAT = int(os.environ.get("IRIS_RELIABILITY_REPEAT", "1"))
_OUTCOMES: dict[str, list[dict]] = defaultdict(list)


def repeat(times: int = REPEAT):
    """Parametrise a case over its repetitions."""
    return pytest.mark.parametrize("repetition", range(times), ids=lambda i: f"rep{i}")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.reliability)


class Outcome:
    """What one repetition of a case kept, in a sentence, for the report."""

    def __init__(self):
        self.notes: list[str] = []
        self.started = time.monotonic()

    def note(self, text: str) -> None:
        self.notes.append(text)


@pytest.fixture
def outcome(request):
    recorded = Outcome()
    yield recorded
    report = getattr(request.node, "rep_call", None)
    case = request.node.originalname or request.node.name
    _OUTCOMES[case].append(
        {
            "passed": bool(report and report.passed),
            "seconds": time.monotonic() - recorded.started,
            "notes": recorded.notes,
            "doc": (request.node.function.__doc__ or "").strip().splitlines()[0]
            if request.node.function.__doc__
            else case,
            "module": request.node.module.__name__.rsplit(".", 1)[-1],
        }
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


def _table() -> str:
    lines = [
        "| suite | case | repetitions | passed | median s | outcome as measured |",
        "|---|---|---|---|---|---|",
    ]
    for case, runs in _OUTCOMES.items():
        seconds = sorted(r["seconds"] for r in runs)
        notes = sorted({note for r in runs for note in r["notes"]})
        lines.append(
            f"| {runs[0]['module']} | {runs[0]['doc']} (`{case}`) | {len(runs)} | "
            f"{sum(r['passed'] for r in runs)} | {seconds[len(seconds) // 2]:.1f} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter):
    if not _OUTCOMES:
        return
    terminalreporter.write_sep("=", "reliability cases")
    terminalreporter.write_line(_table())
    target = os.environ.get("IRIS_RELIABILITY_REPORT")
    if target:
        header = Path(__file__).with_name("report_header.md").read_text()
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
        Path(target).write_text(header.format(machine=machine, repeat=REPEAT) + "\n" + _table() + "\n")
        terminalreporter.write_line(f"reliability table written to {target}")
