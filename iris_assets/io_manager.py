"""Where asset values live between steps: one object per asset *per run*, in a folder or a bucket.

Dagster's default filesystem IO manager keeps one file per asset, so two runs in
flight at once (two landing files, a schedule tick during a manual run) overwrite
each other's values: a run trained on one file could evaluate another's model.
Here a value is stored under ``<base>/<asset key>/<run id>.pickle`` (a partition's
under ``<base>/<asset key>/<partition>/<run id>.pickle``), and a step reads the value
its own run produced, else the one its parent run produced (a re-execution), else
the one its backfill produced, else the latest materialisation's (a partial
materialisation, say ``metrics`` alone, reads the model of an earlier run). An op's
output (a sweep's stages) is stored by ``UPathIOManager``'s own path, under its run;
``stored_value`` reads one run's value of an asset (the ``splits`` a sweep pins).

``<base>`` is ``$IRIS_ASSET_STORAGE``: a local folder (default
``<DAGSTER_HOME>/storage/assets``) or an S3 bucket (``s3://bucket/prefix``, with
``$AWS_ENDPOINT_URL`` for an S3-compatible server), through Dagster's
``UPathIOManager`` and fsspec (``s3fs``). Steps on other machines (Celery workers)
need the bucket: a folder is only seen by its own machine. A bucket that stops
answering (a restart) is waited for, up to ``$IRIS_OUTAGE_LIMIT_SECONDS``
(``execution.outages``); a missing key is an answer, never retried.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Optional, TypeVar
from urllib.parse import quote

import dagster as dg
from pydantic import Field

from iris_assets import dagster_private, settings
from iris_assets.execution import outages

if TYPE_CHECKING:
    from upath import UPath

T = TypeVar("T")


class RunScopedPickleIOManager(dg.UPathIOManager):
    extension = ".pickle"

    def get_asset_relative_path(self, context: dg.InputContext | dg.OutputContext) -> UPath:
        from upath import UPath

        if context.has_asset_partitions:  # the run id comes after the partition (get_path_for_partition)
            return UPath(*context.asset_key.path)
        run_id = context.run_id if isinstance(context, dg.OutputContext) else context.step_context.run_id
        return UPath(*context.asset_key.path, run_id)

    def make_safe_partition_path(self, base_path: UPath, partition: str) -> UPath:
        # A partition key is untrusted (anyone may add a trial in the UI): one escaped path
        # segment under its asset's folder, whatever it holds ("/", "..", "%").
        segment = quote(partition, safe="=")
        return base_path / (segment.replace(".", "%2E") if segment in (".", "..") else segment)

    def get_path_for_partition(self, context: dg.InputContext | dg.OutputContext, path: UPath, partition: str) -> UPath:
        assert isinstance(context, dg.OutputContext)  # inputs are found by load_input
        return self.make_safe_partition_path(path, partition) / context.run_id

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
        else:  # an object store's PUT is atomic (and repeating it is harmless)
            _patiently(self._base_path, lambda: path.write_bytes(data))

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        return pickle.loads(_patiently(self._base_path, path.read_bytes))

    def load_input(self, context: dg.InputContext) -> Any:
        if not context.has_asset_key:  # an op's output (a sweep's stages): UPathIOManager's own path
            return super().load_input(context)
        folder = self._base_path.joinpath(*context.asset_key.path)
        if not context.has_asset_partitions:
            return self._load_from_runs(context, folder, None)
        values = {
            key: self._load_from_runs(context, self.make_safe_partition_path(folder, key), key)
            for key in context.asset_partition_keys
        }
        # One partition (a trial reading its own model): the value; several: a dict by key.
        return next(iter(values.values())) if len(values) == 1 and not _wants_dict(context) else values

    def _load_from_runs(self, context: dg.InputContext, folder: UPath, partition: Optional[str]) -> Any:
        tried = []
        for run_id in _runs_to_read_from(context.instance, context.step_context.run_id, context.asset_key, partition):
            path = folder / f"{run_id}{self.extension}"
            if _patiently(self._base_path, path.exists):
                # On the input's LOADED_INPUT event (no extra event-log write, as a log line would be).
                if partition is None:
                    context.add_input_metadata({"stored_at": dg.MetadataValue.path(str(path)), "source_run_id": run_id})
                return self.load_from_path(context, path)
            tried.append(str(path))
        raise FileNotFoundError(
            f"No stored value of asset {context.asset_key.to_user_string()!r}"
            f"{f' partition {partition!r}' if partition else ''} (looked for {tried}); materialise it first."
        )


def _patiently(base: UPath, call: Callable[[], T]) -> T:
    """``call()``, waited through an outage of the object store under ``base`` (a folder's errors are final)."""
    store = outages.object_store(base)
    return call() if store is None else outages.retrying(store, call)


def _wants_dict(context: dg.InputContext) -> bool:
    return (
        context.dagster_type.typing_type is dict
        or getattr(context.dagster_type.typing_type, "__origin__", None) is dict
    )


def _runs_to_read_from(
    instance: dg.DagsterInstance, run_id: str, asset_key: dg.AssetKey, partition: Optional[str]
) -> Iterator[str]:
    """This run, its ancestors (re-executions), its backfill, then the run of the latest materialisation
    (of the partition)."""
    current: Optional[str] = run_id
    backfill_id: Optional[str] = None
    while current:
        yield current
        run = instance.get_run_by_id(current)
        backfill_id = backfill_id or (run.tags.get(dagster_private.BACKFILL_ID_TAG) if run else None)
        current = run.parent_run_id if run else None
    backfill = instance.get_backfill(backfill_id) if backfill_id is not None and partition is None else None
    if backfill is not None:
        in_backfill = {
            r.run_id
            for r in instance.get_runs(
                filters=dg.RunsFilter(tags={dagster_private.BACKFILL_ID_TAG: backfill.backfill_id})
            )
        }
        since = dg.AssetRecordsFilter(asset_key=asset_key, after_timestamp=backfill.backfill_timestamp)
        records = instance.fetch_materializations(since, limit=1000).records
        yield from [record.run_id for record in records if record.run_id in in_backfill][:1]
    if partition is None:
        latest = instance.get_latest_materialization_event(asset_key)
        if latest is not None:
            yield latest.run_id
        return
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1
    ).records
    if records:
        yield records[0].run_id


class RunScopedStorage(dg.ConfigurableIOManagerFactory):
    """The project's IO manager: per-run values under a folder or an S3 prefix."""

    base_path: Optional[str] = Field(
        default=None,
        description="A folder or s3://bucket/prefix. Default: $IRIS_ASSET_STORAGE, else <DAGSTER_HOME>/storage/assets.",
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> RunScopedPickleIOManager:
        assert context.instance is not None
        return RunScopedPickleIOManager(base_path=storage_base(context.instance, self.base_path))


def storage_base(instance: dg.DagsterInstance, base_path: Optional[str] = None) -> UPath:
    """Where values are stored: ``base_path``, else $IRIS_ASSET_STORAGE, else the instance's folder."""
    from upath import UPath

    current = settings.current()
    base = base_path or current.asset_storage
    if base is None:
        return UPath(instance.storage_directory()) / "assets"
    options = (
        {"endpoint_url": current.aws_endpoint_url} if base.startswith("s3://") and current.aws_endpoint_url else {}
    )
    return UPath(base, **options)


def stored_value(instance: dg.DagsterInstance, asset_key: dg.AssetKey, run_id: str) -> Any:
    """The value of an (unpartitioned) asset that one run stored: what a sweep pins for its trials."""
    base = storage_base(instance)
    path = base.joinpath(*asset_key.path) / f"{run_id}{RunScopedPickleIOManager.extension}"
    try:
        return pickle.loads(_patiently(base, path.read_bytes))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"No stored value of asset {asset_key.to_user_string()!r} from run {run_id} (looked for {path})"
        ) from None
