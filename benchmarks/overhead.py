"""1. Orchestration overhead and 5. peak memory of the run command.

The whole graph through ``dagster job execute`` (the README's run command, default
in-process executor; and the multiprocess executor) against
``benchmarks/baseline_plain.py`` doing the same work in one plain process. Each
repetition is a fresh process on fresh, empty stores (see ``Templates``).
"""

from pathlib import Path

from benchmarks.harness import BIN, REPO_ROOT, Row, Sample, Templates, interleave, run_timed
from iris_assets.runs.summary import reports_success

# Forkserver: one process imports the code location and the heavy libraries once,
# and each step process is forked from it, instead of each step spawning a fresh
# interpreter that imports everything again (~4 s a step here).
MULTIPROCESS_CONFIG = """\
execution:
  config:
    multiprocess: {}   # the project's default: forked from a preloaded forkserver (execution.executor)
"""


def graph_command(run_config: Path | None = None) -> list[str]:
    args = [str(BIN / "dagster"), "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline"]
    return args + (["-c", str(run_config)] if run_config else [])


def baseline_command(*options: str) -> list[str]:
    return [str(BIN / "python"), str(REPO_ROOT / "benchmarks" / "baseline_plain.py"), *options]


def run(templates: Templates, repetitions: int, work_dir: Path) -> tuple[list[Row], dict]:
    multiprocess_yaml = work_dir / "multiprocess.yaml"
    multiprocess_yaml.write_text(MULTIPROCESS_CONFIG)
    memory = {name: Sample(name, unit="MiB") for name in ("graph", "baseline", "baseline_gc", "multiprocess")}
    last_store: dict[str, str] = {}

    def measure(name: str, args: list[str]):
        def once() -> float:
            folder, env = templates.fresh()
            timed = run_timed(args, folder, env)
            if not name.startswith("baseline") and not reports_success(timed.stdout):
                raise RuntimeError(f"{name}: no FINISHED summary\n{timed.stdout[-4000:]}")
            memory[name].values.append(timed.peak_rss / 2**20)
            last_store[name] = env["MLFLOW_TRACKING_URI"]
            return timed.seconds

        return once

    samples = interleave(
        repetitions,
        {
            "graph": measure("graph", graph_command()),
            "baseline": measure("baseline", baseline_command()),
            "baseline_gc": measure("baseline_gc", baseline_command("--gc-freeze")),
            "multiprocess": measure("multiprocess", graph_command(multiprocess_yaml)),
        },
    )
    parity = same_work(last_store["graph"], last_store["baseline"])
    rows = [
        Row(
            "1. Orchestration overhead",
            "`dagster job execute` (in-process) / plain script, wall time",
            samples["graph"],
            samples["baseline"],
            goal="<= 1.15",
        ),
        Row(
            "1. Orchestration overhead",
            "`dagster job execute` (in-process) / plain script with the run's garbage-collection setting "
            "(`--gc-freeze`, like for like), wall time",
            samples["graph"],
            samples["baseline_gc"],
        ),
        Row(
            "1. Orchestration overhead",
            "`dagster job execute` (multiprocess, forkserver) / plain script, wall time",
            samples["multiprocess"],
            samples["baseline"],
            goal="<= 2",
        ),
        Row(
            "5. Peak memory",
            "run command (in-process) / plain script, peak RSS of the process tree",
            memory["graph"],
            memory["baseline"],
        ),
        Row(
            "5. Peak memory",
            "run command (multiprocess) / plain script, peak RSS summed over the process tree",
            memory["multiprocess"],
            memory["baseline"],
        ),
    ]
    return rows, parity


def same_work(graph_uri: str, baseline_uri: str) -> dict:
    """What both runs logged: the baseline must do the graph's MLflow work, no less."""
    from mlflow import MlflowClient

    def summary(uri: str) -> dict:
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("relatorio-II-iris-pipeline")
        (run,) = client.search_runs([experiment.experiment_id])

        def artifacts(path=None):
            found = set()
            for item in client.list_artifacts(run.info.run_id, path):
                found |= artifacts(item.path) if item.is_dir else {item.path}
            return found

        models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
        return {
            "params": dict(run.data.params),
            "metrics": {k: round(v, 6) for k, v in run.data.metrics.items()},
            "artifacts": sorted(artifacts()),
            "logged models": sorted(m.name for m in models),
            "dataset inputs": sorted(d.dataset.name for d in run.inputs.dataset_inputs),
            "registered versions": len(client.search_model_versions()),
            "status": run.info.status,
        }

    graph, baseline = summary(graph_uri), summary(baseline_uri)
    return {key: (graph[key] == baseline[key], graph[key], baseline[key]) for key in graph}
