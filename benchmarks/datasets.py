"""Datasets beside Iris (issue 31): the whole in-process run of Wine, Digits and a generated large CSV.

Each a fresh `dagster job execute` on fresh stores, interleaved with Iris's
(`-m iris_assets -j iris_pipeline`, the default forest): Wine and Digits from their
shipped code locations, with the default forest too; the generated table (``rows`` rows
of 20 features and 3 integer classes, written in chunks) from a code location file made
for it, with the histogram gradient boosting family (a forest of 100 deep trees on a
million rows would take minutes per run), its file limit raised above its size.
Not in the default sections (the CI smoke test): ``python -m benchmarks --only datasets``.
"""

from pathlib import Path

from benchmarks.harness import BIN, Row, Templates, pipeline_runs
from benchmarks.overhead import graph_command

SECTION = "10. Datasets"
FEATURES = 20
CLASSES = 3
LOCATION = """\
from iris_assets.datasets.definition import load_definition
from iris_assets.datasets.pipeline import dataset_definitions
from iris_assets.location import load

defs = load(lambda: dataset_definitions(load_definition({path!r})))
"""


def write_generated_table(path: Path, rows: int, seed: int = 7, chunk: int = 100_000) -> Path:
    """``rows`` rows of FEATURES normal features whose means depend on the class (learnable, not trivially)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = [f"f{i:02d}" for i in range(FEATURES)]
    centres = rng.normal(0, 0.6, size=(CLASSES, FEATURES))
    with open(path, "w") as out:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            labels = rng.integers(0, CLASSES, size=n)
            frame = pd.DataFrame(centres[labels] + rng.normal(0, 1, size=(n, FEATURES)), columns=columns)
            frame["label"] = labels
            frame.to_csv(out, index=False, header=start == 0, float_format="%.4f")
    return path


def run(templates: Templates, repetitions: int, rows: int, work_dir: Path) -> list[Row]:
    table = write_generated_table(work_dir / f"generated-{rows}.csv", rows)
    definition = work_dir / "generated.yaml"
    definition.write_text(f"name: generated\nsource: {table.name}\nlabel: label\n")
    location = work_dir / "generated_location.py"
    location.write_text(LOCATION.format(path=str(definition)))
    config = work_dir / "generated.yaml.run"
    config.write_text("ops:\n  generated__model: {config: {family: hist_gradient_boosting}}\n")
    located = [str(BIN / "dagster"), "job", "execute", "-m", "iris_assets.datasets.locations"]
    commands = {
        "iris": graph_command(),
        "wine": [*located, "-a", "wine", "-j", "wine_pipeline"],
        "digits": [*located, "-a", "digits", "-j", "digits_pipeline"],
        "generated": [
            *[str(BIN / "dagster"), "job", "execute", "-f", str(location), "-a", "defs"],
            *["-j", "generated_pipeline", "-c", str(config)],
        ],
    }
    limit = str(2 * table.stat().st_size)  # the generated file is far above the 64 MiB default
    samples, memory = pipeline_runs(templates, commands, repetitions, {"IRIS_MAX_CSV_BYTES": limit}, timeout=1800)
    what = {
        "wine": "Wine (178 rows × 13, forest)",
        "digits": "Digits (1,797 rows × 64, forest)",
        "generated": f"a generated CSV ({rows:,} rows × {FEATURES}, {table.stat().st_size / 2**20:,.0f} MiB, "
        "histogram gradient boosting)",
    }
    result = []
    for name, shown in what.items():
        result.append(
            Row(
                SECTION,
                f"in-process run, {shown} / Iris (150 rows × 4, forest), wall time",
                samples[name],
                samples["iris"],
            )
        )
        result.append(
            Row(SECTION, f"in-process run, {shown} / Iris, peak RSS of the process tree", memory[name], memory["iris"])
        )
    return result
