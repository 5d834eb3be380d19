"""Cost as the data grows: the whole in-process run on a generated large table.

Three commands interleaved, each a fresh `dagster job execute` on fresh stores:
the bundled 150-row Iris, a generated table of ``rows`` rows (the Iris rows
repeated with small seeded noise, so the classes stay learnable and every
value stays in range) read through `raw_data`'s `csv_path`, and the same
table with the forest on one core (`n_jobs: 1`), against the default
(all cores).
"""

from pathlib import Path

from benchmarks.harness import Row, Templates, pipeline_runs
from benchmarks.overhead import graph_command

SECTION = "8. Data size"


def write_large_table(path: Path, rows: int, seed: int = 7) -> Path:
    import numpy as np
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(
        columns={
            "sepal length (cm)": "sepal_length",
            "sepal width (cm)": "sepal_width",
            "petal length (cm)": "petal_length",
            "petal width (cm)": "petal_width",
        }
    )
    frame["species"] = [iris.target_names[t] for t in frame.pop("target")]
    repeated = frame.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    noise = np.random.default_rng(seed).normal(0, 0.05, size=(rows, 4))
    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    repeated[features] = (repeated[features] + noise).clip(lower=0.05).round(3)
    repeated.to_csv(path, index=False)
    return path


def run(templates: Templates, repetitions: int, rows: int, work_dir: Path) -> list[Row]:
    table = write_large_table(work_dir / f"iris-{rows}.csv", rows)
    configs = {
        "large": f"ops:\n  raw_data: {{config: {{csv_path: '{table}'}}}}\n",
        "large_one_core": (
            f"ops:\n  raw_data: {{config: {{csv_path: '{table}'}}}}\n  model: {{config: {{n_jobs: 1}}}}\n"
        ),
    }
    commands = {"small": graph_command()}
    for name, text in configs.items():
        config = work_dir / f"{name}.yaml"
        config.write_text(text)
        commands[name] = graph_command(config)
    samples, memory = pipeline_runs(templates, commands, repetitions)
    return [
        Row(
            SECTION,
            f"in-process run, {rows:,} generated rows / the 150-row Iris, wall time",
            samples["large"],
            samples["small"],
        ),
        Row(
            SECTION,
            f"in-process run on {rows:,} rows, forest on one core (`n_jobs: 1`) / on all cores (default), wall time",
            samples["large_one_core"],
            samples["large"],
        ),
        Row(
            SECTION,
            f"in-process run, {rows:,} generated rows / the 150-row Iris, peak RSS of the process tree",
            memory["large"],
            memory["small"],
        ),
    ]
