"""Where asset values live between steps: one object per asset *per run*, in a folder or a bucket.

Dagster's default filesystem IO manager keeps one file per asset, so two runs in
flight at once (two landing files, a schedule tick during a manual run) overwrite
each other's values: a run trained on one file could evaluate another's model.
Here a value is stored under ``<base>/<asset key>/<run id>.pickle``, and a step
reads the value its own run produced, else the one its parent run produced (a
re-execution), else the latest materialisation's (a partial materialisation, say
``metrics`` alone, reads the model of an earlier run).

``<base>`` is ``$IRIS_ASSET_STORAGE``: a local folder (default
``<DAGSTER_HOME>/storage/assets``) or an S3 bucket (``s3://bucket/prefix``, with
``$AWS_ENDPOINT_URL`` for an S3-compatible server), through Dagster's
``UPathIOManager`` and fsspec (``s3fs``). Steps on other machines (Celery workers)
need the bucket: a folder is only seen by its own machine.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

import dagster as dg
from pydantic import Field

from iris_assets import settings

if TYPE_CHECKING:
    from upath import UPath


class RunScopedPickleIOManager(dg.UPathIOManager):
    extension = ".pickle"

    def get_asset_relative_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        from upath import UPath

        run_id = context.run_id if isinstance(context, dg.OutputContext) else context.step_context.run_id
        return UPath(*context.asset_key.path, run_id)

    def make_directory(self, path: UPath) -> None:
        if path.protocol in ("", "file", "local"):  # object stores have no directories
            path.mkdir(parents=True, exist_ok=True)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        if path.protocol in ("", "file", "local"):
            # Through a temporary name: a reader never sees half a file, even if the step is killed.
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_bytes(data)
            os.replace(temporary.path, path.path)
        else:  # an object store's PUT is atomic
            path.write_bytes(data)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        with path.open("rb") as stored:
            return pickle.load(stored)

    def load_input(self, context: dg.InputContext) -> Any:
        if context.has_asset_partitions:
            return super().load_input(context)
        folder = self._base_path.joinpath(*context.asset_key.path)
        tried = []
        for run_id in _runs_to_read_from(context.instance, context.step_context.run_id, context.asset_key):
            path = folder / f"{run_id}{self.extension}"
            if path.exists():
                context.log.debug(self.get_loading_input_log_message(path))
                context.add_input_metadata({"stored_at": dg.MetadataValue.path(str(path)), "source_run_id": run_id})
                return self.load_from_path(context, path)
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


class RunScopedStorage(dg.ConfigurableIOManagerFactory):
    """The project's IO manager: per-run values under a folder or an S3 prefix."""

    base_path: Optional[str] = Field(
        default=None,
        description="A folder or s3://bucket/prefix. Default: $IRIS_ASSET_STORAGE, else <DAGSTER_HOME>/storage/assets.",
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> RunScopedPickleIOManager:
        from upath import UPath

        current = settings.current()
        base = self.base_path or current.asset_storage
        if base is None:
            assert context.instance is not None
            return RunScopedPickleIOManager(base_path=UPath(context.instance.storage_directory()) / "assets")
        options = (
            {"endpoint_url": current.aws_endpoint_url} if base.startswith("s3://") and current.aws_endpoint_url else {}
        )
        return RunScopedPickleIOManager(base_path=UPath(base, **options))
