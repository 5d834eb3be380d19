"""MLflow's fluent API inside a step: ``mlflow.log_param(...)``, autologging and ``mlflow.start_run`` use the bound run.

MLflow keeps, per thread, a stack of active runs; ``mlflow.log_param`` and its
siblings, ``mlflow.<flavor>.log_model``, autologging and ``mlflow.active_run()``
all use its top, and start a run of their own in ``Default`` when it is empty.
While a resource is set up for a Dagster run, the bottom of that stack is the
binding's entry: a ``BoundRun``, which elects the MLflow run only when something
first asks for its id, so the binding stays lazy. Hence:

* fluent calls log into the one MLflow run of the Dagster run, in every process of
  every executor (each step process sets the resource up, so has its own entry);
* ``with mlflow.start_run(run_id=<the bound run's id>)`` (the seed's XCom style)
  returns that entry, whose block ends nothing; ``mlflow.start_run()`` without an id
  starts a *child* of the bound run (``nested=True`` implied), in its experiment;
* ``mlflow.end_run()`` with the entry on top ends nothing, and so neither does
  MLflow's exit hook: the run's status is the Dagster run's, set once at its end
  (``closing.settle``);
* at teardown the entry leaves the stack, ending any child left open above it:
  nothing stays active once a materialisation returns.

The wrapped ``start_run`` / ``end_run`` pass every call through unchanged when the
top of the stack is not a binding's entry (outside Dagster, or inside a child run).
Fluent calls also use MLflow's process-wide tracking URI: while any binding is set up
in the process it is the binding's store, and it is restored after the last one.
Two materialisations at once in one process bound to *different* stores cannot both
use the fluent API (the first one's store is kept; the resource's own methods, which
name their store, work for both).
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from iris_assets.tracking import private
from iris_assets.tracking.store import GLOBAL_URI_VARIABLES, restore_environment

if TYPE_CHECKING:
    from mlflow.entities import Run

_lock = threading.Lock()
_installed = False
_store_users: list[str] = []  # the tracking URI of each binding set up in this process
_saved_store: dict[str, Optional[str]] = {}


def _bound_run_class() -> type:
    from mlflow import ActiveRun

    class BoundRun(ActiveRun):
        """The binding's entry on MLflow's active-run stack: the bound run, elected on first use."""

        def __init__(self, load: Callable[[], Run]):  # no Run yet: see load
            self._load = load
            self._run: Optional[Run] = None
            self.stack: list = []  # the thread's stack it was put on

        def _loaded(self) -> Run:
            if self._run is None:
                self._run = self._load()
            return self._run

        info = property(lambda self: self._loaded().info)
        data = property(lambda self: self._loaded().data)
        inputs = property(lambda self: self._loaded().inputs)
        outputs = property(lambda self: self._loaded().outputs)

        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc_val, exc_tb) -> None:
            return None  # ends nothing; an exception goes on

        def __repr__(self) -> str:
            return f"<BoundRun {self._run.info.run_id if self._run else '(not elected yet)'}>"

    return BoundRun


@functools.cache
def bound_run_class() -> type:
    return _bound_run_class()


def _entry_on_top() -> Any:
    stack = private.active_run_stack()
    return stack[-1] if stack and isinstance(stack[-1], bound_run_class()) else None


def install() -> None:
    """Wrap MLflow's ``start_run`` and ``end_run`` (once per process; idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        import mlflow

        fluent = private.fluent_module()
        original_start, original_end = fluent.start_run, fluent.end_run
        signature = inspect.signature(original_start)

        @functools.wraps(original_start)
        def start_run(*args: Any, **kwargs: Any) -> Any:
            entry = _entry_on_top()
            if entry is None:
                return original_start(*args, **kwargs)
            arguments = signature.bind(*args, **kwargs).arguments
            run_id = arguments.get("run_id")
            if run_id and run_id == entry.info.run_id:
                if arguments.get("tags"):
                    mlflow.set_tags(arguments["tags"])
                return entry  # the seed's `with mlflow.start_run(run_id=...)`: its block ends nothing
            if not run_id and not arguments.get("experiment_id"):
                arguments["experiment_id"] = entry.info.experiment_id  # a child beside its parent
            arguments["nested"] = True
            return original_start(**arguments)

        @functools.wraps(original_end)
        def end_run(*args: Any, **kwargs: Any) -> None:
            if _entry_on_top() is not None:
                return None  # the bound run ends with its Dagster run
            return original_end(*args, **kwargs)

        fluent.start_run = mlflow.start_run = start_run
        fluent.end_run = mlflow.end_run = end_run
        _installed = True


def enter(load: Callable[[], Run], tracking_uri: str) -> Any:
    """Put a binding's entry on this thread's active-run stack; ``load`` elects the run when first asked."""
    install()
    _use_store(tracking_uri)
    entry = bound_run_class()(load)
    entry.stack = private.active_run_stack()
    entry.stack.append(entry)
    return entry


def leave(entry: Any, tracking_uri: str) -> list[str]:
    """Take the entry off its stack, ending the child runs left open above it (FINISHED, as MLflow's
    exit hook would); returns their ids."""
    stack = entry.stack
    ended: list[str] = []
    try:
        position = next((i for i, item in enumerate(stack) if item is entry), None)
        if position is not None:
            children = stack[position + 1 :]
            del stack[position:]
            if children:
                from mlflow import MlflowClient

                client = MlflowClient(tracking_uri=tracking_uri)
                for child in reversed(children):
                    client.set_terminated(child.info.run_id, "FINISHED")
                    ended.append(child.info.run_id)
    finally:
        _release_store(tracking_uri)
    return ended


def _use_store(tracking_uri: str) -> bool:
    """Make ``tracking_uri`` MLflow's process-wide store while a binding is set up; False when another
    binding of this process holds another store."""
    import mlflow

    with _lock:
        _store_users.append(tracking_uri)
        if len(_store_users) > 1:
            return _store_users[0] == tracking_uri
        _saved_store.clear()
        _saved_store.update({name: os.environ.get(name) for name in GLOBAL_URI_VARIABLES})
        if os.environ.get("MLFLOW_REGISTRY_URI") not in (None, tracking_uri):
            mlflow.set_registry_uri(tracking_uri)
        if mlflow.get_tracking_uri() != tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        return True


def _release_store(tracking_uri: str) -> None:
    import mlflow

    with _lock:
        if tracking_uri in _store_users:
            _store_users.remove(tracking_uri)
        if _store_users or not _saved_store:
            return
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # back to the environment's
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
        restore_environment(_saved_store)
        _saved_store.clear()
