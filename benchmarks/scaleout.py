"""6. Scale-out: the whole graph on two Celery workers against in-process, on the same servers.

One scale-out topology (iris_harness/scaleout.py: PostgreSQL over TCP, RabbitMQ,
SeaweedFS, the MLflow server with artifacts in the bucket, two ``iris-worker``
processes). Both sides are ``dagster job execute`` against that instance, tracking
server and bucket; only the executor differs. Where a Celery run's time goes is read
from its event log: waiting in the queue, the step itself, and the orchestrator's
once-a-second poll before it submits the next step.
"""

import statistics
from pathlib import Path

import dagster as dg
import yaml

from benchmarks.harness import BIN, REPO_ROOT, Row, base_env, interleave, run_timed
from iris_assets.runs.summary import reports_success
from iris_harness.scaleout import ScaleOut

STEPS = ["raw_data", "splits", "model", "metrics", "onnx_model", "registered_model"]


def run(repetitions: int, work_dir: Path) -> tuple[list[Row], str]:
    folder = work_dir / "scaleout"
    folder.mkdir()
    topology = ScaleOut(folder, workers=2).start(orchestration=False)  # CLI runs: no daemon polling beside them
    try:
        env = {**topology.topology.env}
        configs = {}
        for mode in ("in_process", "celery"):
            path = folder / f"{mode}.yaml"
            path.write_text(yaml.safe_dump({"execution": {"config": {mode: {}}}}))
            configs[mode] = path

        def measure(mode: str):
            def once() -> float:
                command = [str(BIN / "dagster"), "job", "execute", "-m", "iris_assets", "-j", "iris_pipeline"]
                timed = run_timed(
                    [*command, "-c", str(configs[mode])], REPO_ROOT, {**base_env(), **env}, log=folder / "stdout.log"
                )
                if not reports_success(timed.stdout):
                    raise RuntimeError(f"{mode}: no FINISHED summary\n{timed.stdout[-4000:]}")
                return timed.seconds

            return once

        samples = interleave(repetitions, {"celery": measure("celery"), "in_process": measure("in_process")})
        with topology.topology.instance() as instance:
            detail = _where_the_time_goes(instance)
    finally:
        topology.stop()
    rows = [
        Row(
            "6. Scale-out",
            "`dagster job execute`: Celery, 2 workers / in-process (same servers, values in the bucket), wall time",
            samples["celery"],
            samples["in_process"],
        )
    ]
    return rows, detail


def _where_the_time_goes(instance: dg.DagsterInstance) -> str:
    """Per step of the last Celery run: queue wait, work, and the poll before the next submission."""
    runs = [r for r in instance.get_runs() if "celery" in str(r.run_config.get("execution", {}))]
    run = runs[0]  # the most recent
    submitted, started, finished = {}, {}, {}
    for entry in instance.all_logs(run.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        message = entry.message or event.message or ""
        if event.event_type == dg.DagsterEventType.ENGINE_EVENT and message.startswith("Submitting celery task"):
            submitted.setdefault(event.step_key or message.rsplit('"', 2)[-2], entry.timestamp)
        elif event.event_type == dg.DagsterEventType.STEP_START:
            started.setdefault(entry.step_key, entry.timestamp)
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            finished[entry.step_key] = entry.timestamp
    lines = [
        "### Where a Celery run's time goes (the last run, from its event log)",
        "",
        "| step | submitted → started (queue, worker pick-up, step process) | started → done (the step) |",
        "|---|---|---|",
    ]
    for step in STEPS:
        if step in submitted and step in started and step in finished:
            lines.append(
                f"| `{step}` | {started[step] - submitted[step]:.2f} s | {finished[step] - started[step]:.2f} s |"
            )
    starts = sorted(started.values())
    work = sum(finished[s] - started[s] for s in finished if s in started)
    total = max(finished.values()) - min(submitted.values()) if finished and submitted else float("nan")
    gaps = [
        submitted[s] - finished[p] for p, s in zip(STEPS, STEPS[1:], strict=False) if s in submitted and p in finished
    ]
    lines += [
        "",
        f"Steps' own work {work:.1f} s of {total:.1f} s from the first submission to the last step's end; "
        f"between a step's end and the next submission, median {statistics.median(gaps) if gaps else float('nan'):.2f} s "
        "(dagster-celery polls results once a second). First step started "
        f"{(starts[0] - min(submitted.values())) if starts else float('nan'):.2f} s after submission.",
        "",
    ]
    return "\n".join(lines)
