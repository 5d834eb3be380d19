"""Run every benchmark and write the table: ``.venv/bin/python -m benchmarks [--quick] [--out FILE]``.

Every figure is a ratio of two things measured side by side in this one run
(interleaved repetitions, medians), never an absolute time.
"""

import argparse
import math
import os
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.harness import BENCH_ENV, REPO_ROOT, Row, Templates, machine

SECTIONS = ["overhead", "load", "binding", "serving", "scaleout", "sweep", "data_size", "run_workers"]
# Run only when named (--only): minutes per run on a million rows, too long for the CI smoke test.
OPTIONAL_SECTIONS = ["datasets"]
FULL = {
    "overhead": 4,
    "load": 6,
    "sizes": [0, 1_000, 10_000],
    "binding": 15,
    "single": 3000,
    "batch": 30,
    "data_size": (3, 150_000),
    "scaleout": 3,
    "sweep": 2,
    "run_workers": 4,
    "datasets": (1, 1_000_000),  # one repetition: the million-row run takes minutes
}
QUICK = {
    "overhead": 1,
    "load": 1,
    "sizes": [0, 20, 50],
    "binding": 2,
    "single": 120,
    "batch": 3,
    "data_size": (1, 15_000),
    "scaleout": 1,
    "sweep": 1,
    "run_workers": 1,
    "datasets": (1, 20_000),
}
ANALYSIS = Path(__file__).with_name("analysis.md")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one or two repetitions, small experiments (a smoke test)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "BENCHMARKS.md", help="where to write the table")
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS + OPTIONAL_SECTIONS, default=SECTIONS, help="run only these sections"
    )
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    os.environ.update(BENCH_ENV)
    facts = machine()
    started = time.monotonic()
    rows: list[Row] = []
    details: list[str] = []
    failed = []
    with tempfile.TemporaryDirectory(prefix="iris-bench-") as tmp:
        work = Path(tmp)
        templates = Templates(work)
        for section in args.only:
            section_started = time.monotonic()
            try:
                section_rows, detail = run_section(section, templates, settings, work)
            except Exception:  # keep the other sections' rows; the table says what failed
                traceback.print_exc()
                detail = f"### Section {section!r} failed\n\n```\n{traceback.format_exc()[-3000:]}\n```\n"
                section_rows = []
                failed.append(section)
            print(f"section {section}: {time.monotonic() - section_started:.0f} s", file=sys.stderr, flush=True)
            rows += section_rows
            if detail:
                details.append(detail)
    minutes = (time.monotonic() - started) / 60
    args.out.write_text(render(rows, details, facts, args.quick, minutes))
    print(args.out.read_text())
    return 1 if failed else 0


def run_section(section: str, templates: Templates, settings: dict, work: Path) -> tuple[list[Row], str]:
    if section == "overhead":
        from benchmarks import overhead

        rows, parity = overhead.run(templates, settings["overhead"], work)
        return rows, parity_markdown(parity)
    if section == "load":
        from benchmarks import load_time

        return load_time.run(templates, settings["load"]), ""
    if section == "binding":
        from benchmarks import binding

        rows, requests = binding.run(templates, settings["sizes"], settings["binding"], work)
        return rows, requests_markdown(requests)
    if section == "data_size":
        from benchmarks import data_size

        repetitions, rows = settings["data_size"]
        return data_size.run(templates, repetitions, rows, work), ""
    if section == "datasets":
        from benchmarks import datasets

        repetitions, rows = settings["datasets"]
        return datasets.run(templates, repetitions, rows, work), ""
    if section == "scaleout":
        from benchmarks import scaleout

        return scaleout.run(settings["scaleout"], work)
    if section == "run_workers":
        from benchmarks import run_workers

        return run_workers.run(templates, settings["run_workers"]), ""
    if section == "sweep":
        from benchmarks import sweep

        return sweep.run(settings["sweep"], work, quick=settings is QUICK)
    from benchmarks import serving

    return serving.run(settings["single"], settings["batch"]), ""


def fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.3f}"
    return f"{value:.4f}"


def render(rows: list[Row], details: list[str], facts: dict, quick: bool, minutes: float) -> str:
    mode = "quick (smoke test: numbers not meaningful)" if quick else "full"
    lines = [
        "# Benchmarks",
        "",
        "Every figure is a **ratio** of two things measured side by side in one run: repetitions",
        "of A and B interleaved (A B, B A, ...; each CLI repetition a fresh process on fresh, empty",
        "stores), ratio = median(A) / median(B). Nothing here is an absolute time to compare",
        "across machines; the medians are shown only to read the ratios.",
        "",
        "```bash",
        ".venv/bin/python -m benchmarks            # everything, writes BENCHMARKS.md (~15 min here)",
        ".venv/bin/python -m benchmarks --quick    # smoke test (CI runs it without scaleout and sweep)",
        "```",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, mode **{mode}**, in {minutes:.1f} min.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in facts.items()],
        "",
        "| section | figure (A / B) | ratio | goal | met | A: median (min–max) | B: median (min–max) | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        lines.append(
            f"| {row.section} | {row.figure} | **{fmt(row.ratio)}×** | {row.goal or '—'} | {met} | "
            f"{sample_cell(row.a)} | {sample_cell(row.b)} | {len(row.a.values)} / {len(row.b.values)} |"
        )
    lines += ["", *details]
    if ANALYSIS.exists():
        lines += ["", ANALYSIS.read_text().rstrip(), ""]
    return "\n".join(lines) + "\n"


def sample_cell(sample) -> str:
    low, high = sample.spread
    spread = "" if low == high else f" ({fmt(low)}–{fmt(high)})"
    return f"{fmt(sample.median)} {sample.unit}{spread}"


def parity_markdown(parity: dict) -> str:
    lines = [
        "### Same work: what the graph's and the plain script's MLflow runs hold",
        "",
        "| | identical | graph |",
        "|---|---|---|",
    ]
    for key, (same, graph, baseline) in parity.items():
        shown = graph if same else f"graph {graph} / script {baseline}"
        lines.append(f"| {key} | {'yes' if same else '**no**'} | {shown} |")
    return "\n".join(lines) + "\n"


def requests_markdown(requests: dict) -> str:
    graph, baseline = requests["graph"], requests["baseline"]
    lines = [
        "### Tracking API requests of one materialisation, by endpoint (MLflow server access log)",
        "",
        "| endpoint | graph | plain script |",
        "|---|---|---|",
    ]
    for endpoint in sorted(set(graph) | set(baseline), key=lambda e: (-graph.get(e, 0), e)):
        lines.append(f"| `{endpoint}` | {graph.get(endpoint, 0)} | {baseline.get(endpoint, 0)} |")
    lines.append(f"| **total** | **{sum(graph.values())}** | **{sum(baseline.values())}** |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
