"""``MlflowRun``: the resource assets and ops log through; one Dagster run is one MLflow run.

Assets call the resource (``mlflow.log_params(...)``, ``mlflow.log_model(...)``,
``mlflow.link(context)``) or MLflow's own fluent API (``import mlflow;
mlflow.log_param(...)``, autologging, ``mlflow.start_run(run_id=...)``): both reach
the same run. This module is that front, and the lifecycle around it:

* Lazy: nothing touches the MLflow store until something logs, so ``execute_job``
  re-initialising resources after the run has ended (``dagster job execute`` does)
  opens nothing.
* The resource's own calls name their run and store (an ``MlflowClient`` with an
  explicit run id); MLflow's fluent calls find the run on the thread's active-run
  stack, where the resource's set-up puts it and its teardown takes it off
  (``tracking.fluent``). Two materialisations in one process (threads included)
  never share a run, and MLflow's exit hook never ends one.
* Which run: ``election.bind`` (the first run announced in the Dagster event log).
  How it ends: ``closing.settle`` at teardown, and the paths listed in ``closing``.
* What it needs of a project comes through ``defaults`` (a subclass's) and its config:
  it imports nothing of the project around it.

The config keys are dagster-mlflow's, so run config written for
``dagster_mlflow.mlflow_tracking`` keeps working, and its ``end_mlflow_on_run_finished``
hook is harmless (``end_run`` here ends nothing).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import dagster as dg
from pydantic import Field, PrivateAttr

from iris_assets.tracking import config as tracking_config
from iris_assets.tracking import fluent
from iris_assets.tracking.closing import settle
from iris_assets.tracking.election import Binding, bind
from iris_assets.tracking.errors import MlflowBindingError
from iris_assets.tracking.lineage import upstream_runs
from iris_assets.tracking.redaction import refuse_secrets_in_config
from iris_assets.tracking.store import global_store
from iris_assets.tracking.tags import CHECK_TAG_PREFIX, RUN_ID_METADATA_KEY, RUN_URL_METADATA_KEY

if TYPE_CHECKING:
    from mlflow import MlflowClient

MAX_PARAMS_PER_REQUEST = 100  # MLflow's per-request limit
# MLflow's own variables for a tracking server's credentials, by the resource field that holds them.
CREDENTIAL_VARIABLES = {
    "tracking_username": "MLFLOW_TRACKING_USERNAME",
    "tracking_password": "MLFLOW_TRACKING_PASSWORD",
    "tracking_token": "MLFLOW_TRACKING_TOKEN",
}


def credentials_from_environment() -> dict[str, Any]:
    """``dg.EnvVar`` references for the MLflow credentials set in this environment."""
    return {field: dg.EnvVar(name) for field, name in CREDENTIAL_VARIABLES.items() if os.environ.get(name)}


class MlflowRun(dg.ConfigurableResource):
    """The MLflow run of the current Dagster run: every step of one run logs to it."""

    experiment_name: Optional[str] = Field(
        default=None,
        description="MLflow experiment. Default: the project's (this resource's `defaults`), else "
        "$MLFLOW_EXPERIMENT_NAME, else 'Default'.",
    )
    mlflow_tracking_uri: Optional[str] = Field(
        default=None,
        description="Tracking URI. Default: the project's (this resource's `defaults`), else "
        "$MLFLOW_TRACKING_URI, else MLflow's default.",
    )
    parent_run_id: Optional[str] = Field(default=None, description="Nest each run under this MLflow run.")
    run_name: Optional[str] = Field(
        default=None,
        description="Name of each MLflow run (the Dagster run id's first 8 characters are appended). Default: "
        "the job's name; for the UI's Materialize, the asset's name (several assets: the project's default).",
    )
    mlflow_run_id: Optional[str] = Field(
        default=None, description="Log into this existing MLflow run instead of opening one."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables set before MLflow is used.")
    env_to_tag: Optional[list[str]] = Field(
        default=None, description="Environment variables recorded as MLflow run tags."
    )
    extra_tags: dict[str, str] = Field(default_factory=dict, description="Extra tags on every MLflow run.")
    ui_url: Optional[str] = Field(
        default=None,
        description="Base URL of the MLflow UI for links. Default: $MLFLOW_UI_URL, else the "
        f"tracking URI when it is http(s), else {tracking_config.DEFAULT_MLFLOW_UI_URL}.",
    )
    dagster_ui_url: Optional[str] = Field(
        default=None,
        description="Base URL of the Dagster UI, for the MLflow run's link back. Default: "
        f"$DAGSTER_UI_URL, else {tracking_config.DEFAULT_DAGSTER_UI_URL}.",
    )
    # Credentials of a tracking server: give them as dg.EnvVar (see
    # credentials_from_environment), so config and event logs hold the variable's
    # name, never its value.
    tracking_username: Optional[str] = Field(
        default=None, description="Set with dg.EnvVar('MLFLOW_TRACKING_USERNAME')."
    )
    tracking_password: Optional[str] = Field(
        default=None, description="Set with dg.EnvVar('MLFLOW_TRACKING_PASSWORD')."
    )
    tracking_token: Optional[str] = Field(default=None, description="Set with dg.EnvVar('MLFLOW_TRACKING_TOKEN').")

    _init_context: Optional[dg.InitResourceContext] = PrivateAttr(default=None)
    _binding: Optional[Binding] = PrivateAttr(default=None)
    _bind_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _overrides: dict[str, Any] = PrivateAttr(default_factory=dict)
    _fluent_entry: Any = PrivateAttr(default=None)
    _fluent_store: Optional[str] = PrivateAttr(default=None)

    # -- lifecycle ---------------------------------------------------------------------------

    def defaults(self) -> tracking_config.Defaults:
        """What this resource uses where its config says nothing: MLflow's conventions here; a project's
        subclass returns its own (the store, experiment and UI URLs its settings name)."""
        return tracking_config.Defaults.from_environment()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Touches no store: see "Lazy" above. Inside a run, MLflow's fluent API finds the
        # (not yet elected) bound run on this thread's active-run stack.
        self._init_context = context
        self._binding = None
        self._overrides = {}
        self._fluent_entry = None
        if context.run is not None and context.instance is not None:
            self._fluent_store = self.tracking_config().tracking_uri
            self._fluent_entry = fluent.enter(lambda: self._bound().run, self._fluent_store)

    @property
    def dagster_run(self) -> Optional[dg.DagsterRun]:
        """The Dagster run this resource is set up for (None outside one: a sensor's, a script's)."""
        context = self._init_context
        return context.run if context is not None else None

    def use(
        self,
        *,
        experiment_name: Optional[str] = None,
        parent_run_id: Optional[str] = None,
        mlflow_run_id: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
    ) -> None:
        """Bind this Dagster run's MLflow run elsewhere than the resource config says.

        For assets whose run belongs somewhere else (a sweep's trial: a child of the
        sweep's parent run, in the tuning experiment). Call it before anything is
        logged, with the same values from every step of the run.
        """
        with self._bind_lock:
            wanted = {
                "experiment_name": experiment_name,
                "parent_run_id": parent_run_id,
                "mlflow_run_id": mlflow_run_id,
                "tags": dict(tags or {}),
            }
            if self._binding is not None and wanted != self._overrides:
                raise MlflowBindingError("MlflowRun.use() comes after this step already logged to its MLflow run")
            self._overrides = wanted

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._fluent_entry is not None:
            assert self._fluent_store is not None
            ended = fluent.leave(self._fluent_entry, self._fluent_store)
            self._fluent_entry = None
            if ended and context.log is not None:
                context.log.info(f"Ended MLflow child run(s) left open by the step: {', '.join(ended)}")
        if self._binding is not None:
            assert context.instance is not None and context.run is not None
            settle(self._binding, context.instance, context.run)

    def tracking_config(self) -> tracking_config.TrackingConfig:
        """Where and how to track: what ``use`` said, then this resource's config, then the environment."""
        overrides = self._overrides
        return tracking_config.resolve(
            defaults=self.defaults(),
            tracking_uri=self.mlflow_tracking_uri,
            experiment_name=overrides.get("experiment_name") or self.experiment_name,
            ui_url=self.ui_url,
            dagster_ui_url=self.dagster_ui_url,
            parent_run_id=overrides.get("parent_run_id") or self.parent_run_id,
            mlflow_run_id=overrides.get("mlflow_run_id") or self.mlflow_run_id,
            run_name=self.run_name,
            extra_tags={
                **{name: os.environ[name] for name in self.env_to_tag or [] if name in os.environ},
                **self.extra_tags,
                **overrides.get("tags", {}),
            },
        )

    def _bound(self) -> Binding:
        with self._bind_lock:
            if self._binding is None:
                context = self._init_context
                if context is None or context.run is None or context.instance is None:
                    raise MlflowBindingError(
                        "MlflowRun is used outside a Dagster run; give it to an asset as a resource."
                    )
                refuse_secrets_in_config(self.env, self.env_to_tag or [], self.mlflow_tracking_uri)
                os.environ.update(self.env)
                # MLflow's REST client reads credentials from the environment.
                os.environ.update(
                    {name: getattr(self, field) for field, name in CREDENTIAL_VARIABLES.items() if getattr(self, field)}
                )
                self._binding = bind(self.tracking_config(), context.instance, context.run, context.log)
            return self._binding

    def end_run(self, status: Optional[str] = None) -> None:
        """Ends nothing: the MLflow run ends with its Dagster run, with that run's status. Here so that
        code written for dagster-mlflow (its ``end_mlflow_on_run_finished`` hook) runs unchanged."""

    # -- what assets use ---------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._bound().run_id

    @property
    def experiment_id(self) -> str:
        return self._bound().experiment_id

    @property
    def tracking_uri(self) -> str:
        return self._bound().config.tracking_uri

    @property
    def client(self) -> MlflowClient:
        return self._bound().client

    @property
    def run_url(self) -> str:
        return self._bound().run_url

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_REQUEST):
            self.client.log_batch(self.run_id, params=items[start : start + MAX_PARAMS_PER_REQUEST])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        self.client.log_batch(self.run_id, metrics=_metrics(metrics, step))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])

    def log_dict(self, dictionary: Mapping[str, Any], artifact_file: str) -> None:
        self.client.log_dict(self.run_id, dict(dictionary), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """Log ``data`` as the artifact ``artifact_file`` (a path inside the run's artifacts)."""
        folder, _, file_name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / file_name
            local.write_bytes(data)
            self.client.log_artifact(self.run_id, str(local), folder or None)

    def log_model(self, flavor: Any, model: Any, name: str = "model", **kwargs: Any) -> Any:
        """Log ``model`` through an MLflow flavour module (e.g. ``mlflow.sklearn``) into this run.

        Any model of the same name this run already holds (from a step that is being
        re-executed) is deleted first, so the run holds each model exactly once.
        """
        binding = self._bound()
        client = binding.client
        for stale in self._logged_models(name):
            client.delete_logged_model(stale.model_id)
        with self.global_store():  # `Model.log` reads MLflow's global tracking URI
            # Created here so the logged model lands in the run's experiment, not in
            # whatever experiment is globally active in this process.
            logged = client.create_logged_model(binding.experiment_id, name=name, source_run_id=binding.run_id)
            info = flavor.log_model(model, name=name, model_id=logged.model_id, run_id=binding.run_id, **kwargs)
        binding.logged_models[name] = logged.model_id  # logged_model_uri needs no search then
        return info

    def load_model(self, flavor: Any, model_uri: str) -> Any:
        """Load ``model_uri`` (``models:/...``, ``runs:/...``) from this run's store through ``flavor``."""
        with self.global_store():  # a flavour's load_model reads MLflow's global URIs
            return flavor.load_model(model_uri)

    def global_store(self) -> AbstractContextManager[None]:
        """MLflow's global URIs on this run's store for the duration, for the calls that read them."""
        config = self._bound().config
        return global_store(config.tracking_uri, config.tracking_uri_source)

    def logged_model_uri(self, name: str) -> Optional[str]:
        """``models:/<id>`` of this run's logged model called ``name``, if there is one."""
        binding = self._bound()
        if name in binding.logged_models:  # logged by this process, in this run
            return f"models:/{binding.logged_models[name]}"
        found = self._logged_models(name)
        return f"models:/{found[0].model_id}" if found else None

    def _logged_models(self, name: str) -> list:
        binding = self._bound()
        return binding.client.search_logged_models(
            experiment_ids=[binding.experiment_id],
            filter_string=f"source_run_id = '{binding.run_id}' AND name = '{name}'",
        )

    def log_dataset(self, frame: Any, name: str, context: str, source: str, targets: Optional[str] = None) -> str:
        """Log a DataFrame as a run input (MLflow dataset lineage); return its content digest."""
        from mlflow.data.pandas_dataset import from_pandas
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        with warnings.catch_warnings():
            # Two warnings MLflow 3.17 gives every dataset, neither about ours: its registry holds two
            # identical local-file sources (schemes "" and "file"), so any path is "ambiguous"; and a
            # hint about integer columns meant for model signatures, not logged data.
            warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
            dataset = from_pandas(frame, source=source, name=name, targets=targets)
            entity = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
        self.client.log_inputs(self.run_id, datasets=[entity])
        return dataset.digest

    def link(self, context: dg.AssetExecutionContext) -> dict[str, dg.MetadataValue]:
        """Materialisation metadata pointing at this MLflow run (and its upstream lineage as tags)."""
        lineage = upstream_runs(context, self.run_id)
        if lineage:
            self.set_tags(lineage)
        return self.link_run()

    def link_run(self) -> dict[str, dg.MetadataValue]:
        """Metadata pointing at this MLflow run (an op's output: no asset lineage to record)."""
        return {
            RUN_ID_METADATA_KEY: dg.MetadataValue.text(self.run_id),
            RUN_URL_METADATA_KEY: dg.MetadataValue.url(self.run_url),
        }

    def record_check(self, result: dg.AssetCheckResult, check_name: str, **numbers: float) -> dg.AssetCheckResult:
        """Mirror an asset check's outcome in the MLflow run: a tag, plus its numbers as metrics."""
        from mlflow.entities import RunTag

        # The tag and the numbers in one request, not two (6 checks a run).
        self.client.log_batch(
            self.run_id,
            metrics=_metrics({f"{CHECK_TAG_PREFIX}{check_name}.{key}": value for key, value in numbers.items()}),
            tags=[RunTag(f"{CHECK_TAG_PREFIX}{check_name}", "passed" if result.passed else "failed")],
        )
        return result


def _metrics(values: Mapping[str, float], step: int = 0) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, step) for key, value in values.items()]
