"""Python's garbage collector in a process that executes a run.

A run's heap is mostly what imports and definitions made (Dagster, MLflow,
scikit-learn: ~550,000 objects) and it lives until the process exits, yet every
full collection traverses all of it again, and so do the interpreter's last
collections at exit: ~2-3 s of a 10 s in-process run here (see BENCHMARKS.md).
So while a run executes, the survivors of each full collection are frozen
(``gc.freeze``: later collections skip them), and at exit everything is frozen
before the interpreter's final collections.

Only around a run's execution (``SettlingExecutor``), never in long-lived processes
(code server, daemon, Celery workers), where frozen objects that later become
garbage would never be freed: afterwards the heap is unfrozen again, so a process
that goes on (a test session, a notebook) collects as before.
"""

from __future__ import annotations

import atexit
import gc
from collections.abc import Iterator
from contextlib import contextmanager

_exit_hook_registered = False


def _freeze_survivors(phase: str, info: dict) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


@contextmanager
def frozen_survivors() -> Iterator[None]:
    global _exit_hook_registered
    if not _exit_hook_registered:  # atexit runs before the interpreter's final collections
        atexit.register(gc.freeze)
        _exit_hook_registered = True
    gc.callbacks.append(_freeze_survivors)
    try:
        yield
    finally:
        gc.callbacks.remove(_freeze_survivors)
        gc.unfreeze()


def freeze_now() -> None:
    """For a forkserver's last preload module: what it imported is never garbage, and its
    forked step processes then neither traverse it nor touch its pages (no copy-on-write)."""
    gc.freeze()
