"""The benchmark command, once in quick mode: it runs end to end and fills every row of its sections.

A smoke test only: no timing is asserted (the numbers of a quick run mean nothing). Three
sections are left to the full run (``python -m benchmarks``, or ``--quick --only scaleout
sweep run_workers``): each starts servers of its own (the Celery topology; a webserver and
daemon; two webservers) that test_scaleout.py, test_sweeps.py and test_servers.py already start
and exercise, room the suite needed under its 20 minutes (the PostgreSQL outage cases of
issue 32 came in December).
"""

import math
import re

import pytest

from iris_harness.environment import REPO_ROOT, run_cli

pytestmark = pytest.mark.benchmarks

ROW = re.compile(r"^\| (\d\. [^|]+) \| (.+?) \| \*\*([^*]+)×\*\* \|", re.MULTILINE)
EXPECTED_ROWS = {
    "1. Orchestration overhead": 3,
    "2. Load time": 1,
    "3. Binding cost": 11,
    "4. Serving": 6,
    "5. Peak memory": 3,
    "8. Data size": 3,
}


def test_quick_benchmarks_fill_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # `benchmarks` is not an installed package
    out = tmp_path / "BENCHMARKS.md"
    # The timeout is a hang guard: on this loaded 2-core machine the quick run takes 8-12 min.
    sections = ["overhead", "load", "binding", "serving", "data_size"]
    run_cli("python", "-m", "benchmarks", "--quick", "--only", *sections, "--out", str(out), timeout=1500)
    table = out.read_text()
    rows = ROW.findall(table)
    per_section = {section: sum(1 for s, _, _ in rows if s == section) for section in EXPECTED_ROWS}
    assert per_section == EXPECTED_ROWS, table
    for _section, figure, ratio in rows:
        assert math.isfinite(float(ratio.replace(",", ""))) and float(ratio.replace(",", "")) > 0, (figure, ratio)
    # Every median in the row is a finite number too.
    for line in table.splitlines():
        if ROW.match(line):
            for cell in line.split("|")[6:8]:
                number = cell.strip().split(" ")[0].replace(",", "")
                assert math.isfinite(float(number)), line
    assert "| identical |" in table and "**no**" not in table.split("### Same work")[1].split("###")[0], table
    assert "Tracking API requests" in table
    # Counted, not timed: a step's tracking requests do not grow with the experiment (dagster #22633).
    per_step = [ratio for _s, figure, ratio in rows if "tracking API requests of one step" in figure]
    assert per_step and all(ratio == "1.000" for ratio in per_step), per_step
