"""Where asset values live between steps: one file per asset *per run*.

Dagster's default filesystem IO manager keeps one file per asset, so two runs in
flight at once (two landing files, a schedule tick during a manual run) overwrite
each other's values: a run trained on one file could evaluate another's model.
Here a value is stored under ``<storage>/assets/<asset key>/<run id>.pickle``, and a
step reads the value its own run produced, else the one its parent run produced
(a re-execution), else the latest materialisation's (a partial materialisation,
say ``metrics`` alone, reads the model of an earlier run).
"""

import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import Field


class RunScopedPickleIOManager(dg.ConfigurableIOManager):
    base_dir: Optional[str] = Field(
        default=None, description="Folder for asset values. Default: <DAGSTER_HOME>/storage/assets."
    )

    def _folder(self, instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> Path:
        base = Path(self.base_dir) if self.base_dir else Path(instance.storage_directory()) / "assets"
        return base.joinpath(*asset_key.path)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        folder = self._folder(context.step_context.instance, context.asset_key)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{context.run_id}.pickle"
        # Write then rename: a reader never sees half a file, even if this step is killed.
        with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".tmp") as tmp:
            pickle.dump(obj, tmp, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp.name, path)
        context.add_output_metadata({"stored_at": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        instance = context.instance
        folder = self._folder(instance, context.asset_key)
        tried = []
        for run_id in _runs_to_read_from(instance, context.step_context.run_id, context.asset_key):
            path = folder / f"{run_id}.pickle"
            if path.exists():
                with open(path, "rb") as stored:
                    return pickle.load(stored)
            tried.append(str(path))
        raise FileNotFoundError(
            f"No stored value of asset {context.asset_key.to_user_string()!r} (looked for {tried}); "
            "materialise it first."
        )


def _runs_to_read_from(instance: dg.DagsterInstance, run_id: str, asset_key: dg.AssetKey) -> Iterator[str]:
    """This run, its ancestors (re-executions), then the run of the latest materialisation."""
    current: Optional[str] = run_id
    while current:
        yield current
        run = instance.get_run_by_id(current)
        current = run.parent_run_id if run else None
    latest = instance.get_latest_materialization_event(asset_key)
    if latest is not None:
        yield latest.run_id
