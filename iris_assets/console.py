"""What a run prints on a terminal (`dg launch`, `dagster job execute`, `iris-runs reexecute`).

Dagster's own console logger prints every event at DEBUG (~90 lines a run) and each
failure with its stack trace, twice (the step's, then the run's). This one prints INFO
and above, a failure as its error's message alone, and a failed run's own line without
repeating its step's error. The event log keeps everything: the UI shows every event,
stack traces included. `loggers: {console: {config: {log_level: DEBUG}}}` in run config
brings the debug events back to the terminal.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Optional

import dagster as dg

_FAILURES = ("STEP_FAILURE", "PIPELINE_FAILURE")  # the run's failure keeps its old value in Dagster 1.13


def _error_message(error: Any) -> Optional[str]:
    """The innermost error's message (Dagster wraps user errors), without its stack trace."""
    while error is not None and getattr(error, "cause", None) is not None and "dagster._core.errors" in error.message:
        error = error.cause
    return error.message.strip() if error is not None else None


class CompactFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None)
        if not meta:
            return super().format(record)
        event = meta.get("dagster_event")
        parts = [
            self.formatTime(record, "%H:%M:%S"),
            record.levelname,
            meta.get("job_name") or meta.get("resource_name") or "",
            (meta.get("run_id") or "")[:8],
            meta.get("step_key") or "",
            event.event_type_value.replace("PIPELINE_", "RUN_") if event is not None else "",
            meta.get("orig_message", ""),
        ]
        line = " - ".join(part for part in parts if part)
        if event is not None and event.event_type_value in _FAILURES:
            data = event.event_specific_data
            repeated = event.event_type_value == "PIPELINE_FAILURE" and getattr(data, "first_step_failure_event", None)
            message = None if repeated else _error_message(getattr(data, "error", None))
            if message:
                line += "\n  " + message.replace("\n", "\n  ")
        return line


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, default_value="INFO", description="DEBUG shows every event"),
        "name": dg.Field(str, default_value="dagster"),
    },
    description="INFO and above on stderr; failures as their message, without stack traces (the UI has them).",
)
def compact_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger(init_context.logger_config["name"], level=init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CompactFormatter())
    logger.addHandler(handler)
    return logger
