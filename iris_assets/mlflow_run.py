"""The MLflow binding: one Dagster run is recorded as exactly one MLflow run.

``MlflowRun`` is the only code that knows about the MLflow run lifecycle; assets
just call ``mlflow.log_params(...)``, ``mlflow.log_model(...)`` and so on. It keeps
dagster-mlflow's resource config keys and its ``dagster_run_id`` tag, and fixes
what the stock resource gets wrong:

* No global state. The stock resource drives MLflow's *fluent* API, whose active
  run is process-global: two materialisations in one process share a run, and
  MLflow 3's ``atexit`` hook (``_safe_end_run``) marks a failed run FINISHED when
  a step process exits. Here every call goes through an ``MlflowClient`` with an
  explicit run id, so there is no active run for anything to end or share.
* Lazy binding. Nothing touches MLflow until an asset logs something, so
  ``execute_job`` re-initialising resources after the run has ended (what
  ``dagster job execute`` does) opens nothing.
* A race-free choice of run. Steps of one Dagster run may start at the same time
  in different processes or hosts (parallel root assets under the multiprocess
  executor); "search by tag, create if missing" then creates two runs. Here a step
  that finds no run creates a *candidate* and announces it as an engine event in
  the Dagster run's event log. The event log is shared by every executor and gives
  its events a total order, so every step elects the same run: the first announced.
  Losing candidates are deleted.
* The status is derived from the Dagster event log, not from "the last op in
  topological order" (a job hook that never runs for the asset job the UI
  launches). When a step process tears the resource down it reads the run's step
  events: any STEP_FAILURE ends the MLflow run FAILED, and once every planned step
  has succeeded it ends FINISHED. Both writes are idempotent and never contradict
  each other, so steps finishing concurrently in any order agree.
* Re-execution from failure (from the UI, or an automatic run retry) continues
  the failed run's MLflow run, so it ends FINISHED with every artifact once; any
  other new Dagster run gets a new MLflow run.
"""

import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import urlparse

import dagster as dg
from dagster._core.storage.tags import ASSET_RESUME_RETRY_TAG, RESUME_RETRY_TAG
from pydantic import Field, PrivateAttr

from iris_assets.local_state import embedded_tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEFAULT_EXPERIMENT = "relatorio-II-iris-pipeline"
EXPERIMENT_ENV_VAR = "IRIS_MLFLOW_EXPERIMENT"
UI_URL_ENV_VAR = "MLFLOW_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:5000"  # where `mlflow ui` / `mlflow server` listen by default
DAGSTER_UI_URL_ENV_VAR = "DAGSTER_UI_URL"
DEFAULT_DAGSTER_UI_URL = "http://127.0.0.1:3000"  # where `dagster dev` listens by default

DAGSTER_RUN_ID_TAG = "dagster_run_id"  # dagster-mlflow's tag: existing queries keep working
DAGSTER_RUN_IDS_TAG = "dagster_run_ids"  # every Dagster run that wrote to this MLflow run
JOB_NAME_TAG = "dagster_job_name"
DAGSTER_RUN_URL_TAG = "dagster_run_url"
PARENT_RUN_ID_TAG = "dagster_parent_run_id"
ROOT_RUN_ID_TAG = "dagster_root_run_id"
UPSTREAM_TAG_PREFIX = "upstream."
# Dagster run tags copied onto the MLflow run: what started it (schedule, sensor,
# backfill, partition) and the project's own tags (landing file, digest...).
COPIED_DAGSTER_TAGS = (
    "dagster/schedule_name",
    "dagster/sensor_name",
    "dagster/tick",
    "dagster/backfill",
    "dagster/partition",
    "iris/",
)

RUN_ID_METADATA_KEY = "mlflow_run_id"
RUN_URL_METADATA_KEY = "mlflow_run_url"
# Metadata keys of the engine events that announce candidate runs (see module docstring).
CANDIDATE_METADATA_KEY = "mlflow_run_candidate"
CANDIDATE_STORE_METADATA_KEY = "mlflow_tracking_uri"

# `Model.log` resolves the tracking URI from process-global state; serialise the
# few calls that need it so concurrent bindings to different stores stay apart.
_GLOBAL_MLFLOW_STATE = threading.Lock()


class MlflowBindingError(Exception):
    """The MLflow run for this Dagster run could not be opened or used."""


# Resource fields holding credentials, and the variables MLflow's REST client reads them from.
CREDENTIAL_ENV_VARS = {
    "tracking_username": "MLFLOW_TRACKING_USERNAME",
    "tracking_password": "MLFLOW_TRACKING_PASSWORD",
    "tracking_token": "MLFLOW_TRACKING_TOKEN",
}
# Names that must not go into run config (`env`) or run tags (`env_to_tag`).
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|PRIVATE|API_KEY|ACCESS_KEY|USERNAME", re.I)


def credentials_from_environment() -> dict[str, Any]:
    """``dg.EnvVar`` references for the MLflow credentials set in this environment."""
    return {field: dg.EnvVar(var) for field, var in CREDENTIAL_ENV_VARS.items() if os.environ.get(var)}


def _refuse_secrets_in_config(resource: "MlflowRun") -> None:
    for name in resource.env:
        if _SECRET_NAME.search(name):
            raise MlflowBindingError(
                f"The mlflow resource's `env` config sets {name}, which looks like a credential: run "
                f"config is stored with every run and shown in the UI. Set {name} in the environment "
                "of the code server and run workers instead (read with dg.EnvVar)."
            )
    for name in resource.env_to_tag or []:
        if _SECRET_NAME.search(name):
            raise MlflowBindingError(
                f"The mlflow resource's `env_to_tag` lists {name}, which looks like a credential; "
                "MLflow tags are readable by anyone who can read the run. Remove it."
            )


class MlflowRun(dg.ConfigurableResource):
    """The MLflow run of the current Dagster run: every step of one run logs to it.

    The config keys are dagster-mlflow's (``experiment_name``, ``mlflow_tracking_uri``,
    ``parent_run_id``, ``mlflow_run_id``, ``env``, ``env_to_tag``, ``extra_tags``), so
    run config written for ``dagster_mlflow.mlflow_tracking`` keeps working.
    """

    experiment_name: Optional[str] = Field(
        default=None,
        description=f"MLflow experiment. Default: ${EXPERIMENT_ENV_VAR}, else {DEFAULT_EXPERIMENT!r}.",
    )
    mlflow_tracking_uri: Optional[str] = Field(
        default=None,
        description="Tracking URI. Default: $MLFLOW_TRACKING_URI, else the embedded sqlite "
        "store .iris_state/mlflow.db.",
    )
    parent_run_id: Optional[str] = Field(
        default=None, description="Nest each run under this MLflow run."
    )
    mlflow_run_id: Optional[str] = Field(
        default=None, description="Log into this existing MLflow run instead of opening one."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables set before MLflow is used."
    )
    env_to_tag: Optional[list[str]] = Field(
        default=None, description="Environment variables recorded as MLflow run tags."
    )
    extra_tags: dict[str, str] = Field(
        default_factory=dict, description="Extra tags on every MLflow run."
    )
    ui_url: Optional[str] = Field(
        default=None,
        description=f"Base URL of the MLflow UI for links. Default: ${UI_URL_ENV_VAR}, else the "
        f"tracking URI when it is http(s), else {DEFAULT_UI_URL}.",
    )
    dagster_ui_url: Optional[str] = Field(
        default=None,
        description=f"Base URL of the Dagster UI, for the MLflow run's link back. Default: "
        f"${DAGSTER_UI_URL_ENV_VAR}, else {DEFAULT_DAGSTER_UI_URL}.",
    )
    # Credentials of a tracking server: give them as dg.EnvVar (see
    # credentials_from_environment), so config and event logs hold the variable's
    # name, never its value.
    tracking_username: Optional[str] = Field(default=None, description="Set with dg.EnvVar('MLFLOW_TRACKING_USERNAME').")
    tracking_password: Optional[str] = Field(default=None, description="Set with dg.EnvVar('MLFLOW_TRACKING_PASSWORD').")
    tracking_token: Optional[str] = Field(default=None, description="Set with dg.EnvVar('MLFLOW_TRACKING_TOKEN').")

    _init_context: Optional[dg.InitResourceContext] = PrivateAttr(default=None)
    _binding: Optional["_Binding"] = PrivateAttr(default=None)
    _bind_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # -- lifecycle ---------------------------------------------------------------------------

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Deliberately touches nothing: see "Lazy binding" above.
        self._init_context = context
        self._binding = None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._binding is not None:
            self._binding.settle(context.instance, context.run, context.log)

    # -- what assets use ---------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._bound().run_id

    @property
    def experiment_id(self) -> str:
        return self._bound().experiment_id

    @property
    def tracking_uri(self) -> str:
        return self._bound().tracking_uri

    @property
    def client(self) -> "MlflowClient":
        return self._bound().client

    @property
    def run_url(self) -> str:
        binding = self._bound()
        return f"{binding.ui_url}/#/experiments/{binding.experiment_id}/runs/{binding.run_id}"

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow's per-request limit
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(
            self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()]
        )

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
        for stale in client.search_logged_models(
            experiment_ids=[binding.experiment_id],
            filter_string=f"source_run_id = '{binding.run_id}' AND name = '{name}'",
        ):
            client.delete_logged_model(stale.model_id)
        with _GLOBAL_MLFLOW_STATE:
            import mlflow

            mlflow.set_tracking_uri(binding.tracking_uri)
            # Created here so the logged model lands in the run's experiment, not in
            # whatever experiment is globally active in this process.
            logged = client.create_logged_model(
                binding.experiment_id, name=name, source_run_id=binding.run_id
            )
            info = flavor.log_model(
                model, name=name, model_id=logged.model_id, run_id=binding.run_id, **kwargs
            )
        binding.logged_models[name] = logged.model_id  # logged_model_uri needs no search then
        return info

    def logged_model_uri(self, name: str) -> Optional[str]:
        """``models:/<id>`` of this run's logged model called ``name``, if there is one."""
        binding = self._bound()
        if name in binding.logged_models:  # logged by this process, in this run
            return f"models:/{binding.logged_models[name]}"
        found = self.client.search_logged_models(
            experiment_ids=[binding.experiment_id],
            filter_string=f"source_run_id = '{binding.run_id}' AND name = '{name}'",
        )
        return f"models:/{found[0].model_id}" if found else None

    def log_dataset(self, frame: Any, name: str, context: str, source: str, targets: Optional[str] = None) -> str:
        """Log a DataFrame as a run input (MLflow dataset lineage); return its content digest."""
        from mlflow.data import from_pandas
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        dataset = from_pandas(frame, source=source, name=name, targets=targets)
        self.client.log_inputs(
            self.run_id,
            datasets=[
                DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
            ],
        )
        return dataset.digest

    def register_model(self, name: str, artifact_path: str = "model", tags: Optional[Mapping[str, Any]] = None):
        """Register this run's logged model ``artifact_path`` as a new version of ``name``.

        Through this binding's own client, not ``mlflow.register_model``: in a sqlite
        store, a version written through the fluent API's store was not yet visible to
        this client's reads ("Model Version ... not found" right after registering).
        """
        from mlflow.exceptions import MlflowException

        binding = self._bound()
        model_uri = self.logged_model_uri(artifact_path)
        if model_uri is None:
            raise MlflowBindingError(f"MLflow run {binding.run_id} has no logged model {artifact_path!r}")
        client = self.client
        with _sqlite_registry_lock(binding.tracking_uri):
            if not client.search_registered_models(filter_string=f"name = '{name}'"):
                try:
                    client.create_registered_model(name)
                except MlflowException as error:
                    if error.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
            return client.create_model_version(
                name,
                source=model_uri,
                run_id=binding.run_id,
                tags={k: str(v) for k, v in (tags or {}).items()},
                model_id=model_uri.removeprefix("models:/"),
            )

    def link(self, context: dg.AssetExecutionContext) -> dict[str, dg.MetadataValue]:
        """Materialisation metadata pointing at this MLflow run.

        Also records, as ``upstream.<asset>.*`` tags, which MLflow run produced each
        upstream asset this step read when that was not this run (a partial
        materialisation, say ``metrics`` alone, reads the model of an earlier run).
        """
        binding = self._bound()
        lineage: dict[str, str] = {}
        for key in context.assets_def.keys_by_input_name.values():
            event = context.instance.get_latest_materialization_event(key)
            if event is None or event.asset_materialization is None:
                continue
            upstream = event.asset_materialization.metadata.get(RUN_ID_METADATA_KEY)
            if upstream is not None and upstream.value != binding.run_id:
                name = key.to_user_string()
                lineage[f"{UPSTREAM_TAG_PREFIX}{name}.mlflow_run_id"] = str(upstream.value)
                lineage[f"{UPSTREAM_TAG_PREFIX}{name}.dagster_run_id"] = event.run_id
        if lineage:
            self.set_tags(lineage)
        return {
            RUN_ID_METADATA_KEY: dg.MetadataValue.text(binding.run_id),
            RUN_URL_METADATA_KEY: dg.MetadataValue.url(self.run_url),
        }

    def record_check(self, result: dg.AssetCheckResult, check_name: str, **numbers: float) -> dg.AssetCheckResult:
        """Mirror an asset check's outcome in the MLflow run: a tag, plus its numbers as metrics."""
        import time

        from mlflow.entities import Metric, RunTag

        # The tag and the numbers in one request, not two (6 checks a run).
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.run_id,
            metrics=[Metric(f"check.{check_name}.{key}", float(value), now, 0) for key, value in numbers.items()],
            tags=[RunTag(f"check.{check_name}", "passed" if result.passed else "failed")],
        )
        return result

    def end_orphaned_run(self, instance: dg.DagsterInstance, dagster_run, status: str) -> list[str]:
        """End, with ``status``, MLflow runs a finished Dagster run left RUNNING.

        For the run-status sensor: a killed step process or run worker, or a cancel,
        leaves no in-run code to end the MLflow run. Idempotent (only RUNNING runs are
        touched), and never ends a run that another Dagster run still writes to (a
        re-execution continuing it). Returns the ids of the runs it ended.
        """
        if not dagster_run.is_finished:
            return []
        tracking_uri = self.resolved_tracking_uri()
        client = mlflow_client(tracking_uri)
        candidates = set(announced_mlflow_runs(instance, dagster_run.run_id))
        experiment = client.get_experiment_by_name(self.resolved_experiment_name())
        if experiment is not None:  # also a candidate whose process died before announcing it
            candidates.update(
                run.info.run_id
                for run in client.search_runs(
                    [experiment.experiment_id],
                    filter_string=f"tags.{DAGSTER_RUN_ID_TAG} = '{dagster_run.run_id}' "
                    "AND attributes.status = 'RUNNING'",
                )
            )
        ended = []
        for run_id in sorted(candidates):
            run = client.get_run(run_id)
            if run.info.status != "RUNNING":
                continue
            writers = [instance.get_run_by_id(i) for i in run.data.tags.get(DAGSTER_RUN_IDS_TAG, "").split()]
            if any(writer is not None and not writer.is_finished for writer in writers):
                continue
            client.set_terminated(run_id, status=status)
            ended.append(run_id)
        return ended

    def end_orphaned_runs(self, instance: dg.DagsterInstance) -> list[tuple[str, str]]:
        """End every MLflow run of the experiment left RUNNING by Dagster runs that are over.

        The sweep behind the run-status sensors: it catches what they missed (the
        tracking server was down when the run failed, the daemon was not running).
        Runs written by Dagster runs this instance does not know are left alone.
        Returns (MLflow run id, status written) pairs.
        """
        client = mlflow_client(self.resolved_tracking_uri())
        experiment = client.get_experiment_by_name(self.resolved_experiment_name())
        if experiment is None:
            return []
        ended = []
        for run in client.search_runs(
            [experiment.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
        ):
            ids = run.data.tags.get(DAGSTER_RUN_IDS_TAG, run.data.tags.get(DAGSTER_RUN_ID_TAG, "")).split()
            writers = [instance.get_run_by_id(i) for i in ids]
            if not writers or any(w is None or not w.is_finished for w in writers):
                continue
            last = writers[-1]
            if last.status == dg.DagsterRunStatus.CANCELED:
                status = "KILLED"
            elif last.status == dg.DagsterRunStatus.FAILURE:
                status = "FAILED"
            else:  # succeeded, but the step that would have ended it could not reach the server
                status = mlflow_status_from_event_log(instance, last) or "FINISHED"
            client.set_terminated(run.info.run_id, status=status)
            ended.append((run.info.run_id, status))
        return ended

    # -- binding -----------------------------------------------------------------------------

    def _bound(self) -> "_Binding":
        with self._bind_lock:
            if self._binding is None:
                if self._init_context is None or self._init_context.run is None:
                    raise MlflowBindingError(
                        "MlflowRun is used outside a Dagster run; give it to an asset as a resource."
                    )
                self._binding = _Binding.open(self, self._init_context)
            return self._binding

    def resolved_experiment_name(self) -> str:
        return self.experiment_name or os.environ.get(EXPERIMENT_ENV_VAR) or DEFAULT_EXPERIMENT

    def resolved_tracking_uri(self) -> str:
        return (
            self.mlflow_tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or embedded_tracking_uri()
        )

    def tracking_uri_source(self) -> str:
        if self.mlflow_tracking_uri:
            return "the resource config key mlflow_tracking_uri"
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return "$MLFLOW_TRACKING_URI"
        return "the embedded default store"

    def resolved_dagster_ui_url(self) -> str:
        return (self.dagster_ui_url or os.environ.get(DAGSTER_UI_URL_ENV_VAR) or DEFAULT_DAGSTER_UI_URL).rstrip("/")

    def resolved_ui_url(self, tracking_uri: str) -> str:
        explicit = self.ui_url or os.environ.get(UI_URL_ENV_VAR)
        if explicit:
            return explicit.rstrip("/")
        if urlparse(tracking_uri).scheme in ("http", "https"):
            return tracking_uri.rstrip("/")
        return DEFAULT_UI_URL


@dataclass
class _Binding:
    client: "MlflowClient"
    tracking_uri: str
    ui_url: str
    experiment_id: str
    run_id: str
    dagster_run_id: str
    logged_models: dict[str, str] = field(default_factory=dict)  # name -> model id, logged here

    @classmethod
    def open(cls, resource: MlflowRun, context: dg.InitResourceContext) -> "_Binding":
        _refuse_secrets_in_config(resource)
        os.environ.update(resource.env)
        for name, variable in CREDENTIAL_ENV_VARS.items():  # MLflow's REST client reads them there
            if getattr(resource, name):
                os.environ[variable] = getattr(resource, name)
        instance, dagster_run, log = context.instance, context.run, context.log
        assert instance is not None and dagster_run is not None
        tracking_uri = resource.resolved_tracking_uri()
        try:
            _check_tracking_uri(tracking_uri)
            with _sqlite_setup_lock(tracking_uri):
                client = mlflow_client(tracking_uri)
                experiment_id = _experiment_id(client, resource.resolved_experiment_name(), tracking_uri)
        except MlflowBindingError:
            raise
        except Exception as error:
            raise MlflowBindingError(
                _store_problem(tracking_uri, resource.tracking_uri_source(), error)
            ) from error

        announced = announced_mlflow_runs(instance, dagster_run.run_id)
        if announced:
            run_id = announced[0]
        else:
            inherited = resource.mlflow_run_id or _continued_mlflow_run(instance, dagster_run)
            if inherited:
                _announce(instance, dagster_run, inherited, "continues", tracking_uri)
                run_id = inherited
                client.update_run(run_id, status="RUNNING")
            else:
                candidate = _create_run(client, experiment_id, resource, dagster_run)
                _announce(instance, dagster_run, candidate, "proposes", tracking_uri)
                run_id = announced_mlflow_runs(instance, dagster_run.run_id)[0]
                if run_id != candidate:
                    # Another step announced first: everyone uses that one.
                    client.delete_run(candidate)
        run = _record_dagster_run(client, run_id, dagster_run)
        binding = cls(
            client=client,
            tracking_uri=tracking_uri,
            ui_url=resource.resolved_ui_url(tracking_uri),
            experiment_id=run.info.experiment_id,
            run_id=run_id,
            dagster_run_id=dagster_run.run_id,
        )
        if log is not None:
            log.info(f"MLflow run {run_id} in experiment {experiment_id} ({tracking_uri})")
        return binding

    def settle(self, instance, dagster_run, log) -> None:
        """End the MLflow run if the Dagster event log says the Dagster run is over."""
        status = mlflow_status_from_event_log(instance, dagster_run)
        if status is None:
            return
        self.client.set_terminated(self.run_id, status=status)
        if status == "FINISHED":
            _delete_losing_candidates(self.client, self.experiment_id, self.run_id, dagster_run)
        if log is not None:
            log.info(f"MLflow run {self.run_id} ended {status}")


def mlflow_status_from_event_log(instance: dg.DagsterInstance, dagster_run) -> Optional[str]:
    """FAILED once any step failed, FINISHED once every planned step succeeded, else None."""
    events = instance.all_logs(
        dagster_run.run_id,
        of_type={
            dg.DagsterEventType.STEP_SUCCESS,
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.STEP_SKIPPED,
        },
    )
    if any(e.dagster_event.event_type == dg.DagsterEventType.STEP_FAILURE for e in events):
        current = instance.get_run_by_id(dagster_run.run_id)
        if current is not None and current.status == dg.DagsterRunStatus.CANCELING:
            return "KILLED"
        return "FAILED"
    plan = instance.get_execution_plan_snapshot(dagster_run.execution_plan_snapshot_id)
    done = {e.step_key for e in events}
    return "FINISHED" if set(plan.step_keys_to_execute) <= done else None


def announced_mlflow_runs(instance: dg.DagsterInstance, dagster_run_id: str) -> list[str]:
    """MLflow run ids announced in a Dagster run's event log, in event-log order."""
    return [run_id for run_id, _ in _announcements(instance, dagster_run_id)]


def _announcements(instance: dg.DagsterInstance, dagster_run_id: str) -> list[tuple[str, str]]:
    """(MLflow run id, tracking URI) of each announcement, in event-log order."""
    announced = []
    for entry in instance.all_logs(dagster_run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        metadata = entry.dagster_event.event_specific_data.metadata
        if CANDIDATE_METADATA_KEY in metadata:
            store = metadata.get(CANDIDATE_STORE_METADATA_KEY)
            announced.append((str(metadata[CANDIDATE_METADATA_KEY].value), store and str(store.value)))
    return announced


def _announce(instance, dagster_run, mlflow_run_id: str, verb: str, tracking_uri: str) -> None:
    from dagster._core.events import EngineEventData

    instance.report_engine_event(
        f"MLflow binding {verb} MLflow run {mlflow_run_id}",
        dagster_run,
        EngineEventData(
            {
                CANDIDATE_METADATA_KEY: dg.MetadataValue.text(mlflow_run_id),
                # So the run worker can end the run after a step process died (see
                # settle_after_steps); never with credentials in it.
                CANDIDATE_STORE_METADATA_KEY: dg.MetadataValue.text(without_credentials(tracking_uri)),
            }
        ),
    )


def without_credentials(uri: str) -> str:
    """``uri`` without a ``user:password@`` part (event logs and tags are not secret)."""
    parts = urlparse(uri)
    if parts.password is None and parts.username is None:
        return uri
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def settle_after_steps(instance: dg.DagsterInstance, dagster_run, log=None) -> Optional[str]:
    """End the Dagster run's MLflow run from the run worker, once every step process is gone.

    Each step process ends the MLflow run when it tears the resource down, but a step
    process killed mid-step (SIGKILL, out of memory) tears nothing down; the executor
    calls this after its last step so the run still ends FAILED. Idempotent; returns
    the status written, if any.
    """
    announced = _announcements(instance, dagster_run.run_id)
    status = mlflow_status_from_event_log(instance, dagster_run) if announced else None
    if status is None:
        return None
    mlflow_run_id, tracking_uri = announced[0]
    if tracking_uri is None:  # announced by an older version of this binding
        return None
    client = mlflow_client(tracking_uri)
    if client.get_run(mlflow_run_id).info.status != "RUNNING":
        return None
    client.set_terminated(mlflow_run_id, status=status)
    if log is not None:
        log.info(f"MLflow run {mlflow_run_id} ended {status} after the last step process exited")
    return status


def _continued_mlflow_run(instance: dg.DagsterInstance, dagster_run) -> Optional[str]:
    """The MLflow run of the parent when this run re-executes it from failure."""
    if not dagster_run.parent_run_id or not _is_from_failure(instance, dagster_run):
        return None
    announced = announced_mlflow_runs(instance, dagster_run.parent_run_id)
    return announced[0] if announced else None


def _is_from_failure(instance: dg.DagsterInstance, dagster_run) -> bool:
    """Whether this run re-executes its parent from failure.

    The UI, the CLI and automatic run retries tag such runs; the Python API
    (``execute_job(reexecution_options=ReexecutionOptions.from_failure(...))``) does
    not, so for an untagged run compare its steps with the ones Dagster itself
    derives for a from-failure re-execution of the parent.
    """
    tags = dagster_run.tags
    if tags.get(RESUME_RETRY_TAG) == "true" or tags.get(ASSET_RESUME_RETRY_TAG) == "true":
        return True
    parent = instance.get_run_by_id(dagster_run.parent_run_id)
    if parent is None or not parent.is_failure_or_canceled or dagster_run.step_keys_to_execute is None:
        return False
    from dagster._core.execution.plan.state import KnownExecutionState

    from_failure_steps, _ = KnownExecutionState.build_resume_retry_reexecution(instance, parent)
    return set(from_failure_steps) == set(dagster_run.step_keys_to_execute)


def _create_run(client: "MlflowClient", experiment_id: str, resource: MlflowRun, dagster_run) -> str:
    tags = {
        DAGSTER_RUN_ID_TAG: dagster_run.run_id,
        DAGSTER_RUN_IDS_TAG: dagster_run.run_id,
        JOB_NAME_TAG: dagster_run.job_name,
        "mlflow.runName": f"{dagster_run.job_name}-{dagster_run.run_id[:8]}",
        "mlflow.source.name": "dagster",
        DAGSTER_RUN_URL_TAG: f"{resource.resolved_dagster_ui_url()}/runs/{dagster_run.run_id}",
    }
    tags.update(
        {k: v for k, v in dagster_run.tags.items() if k.startswith(COPIED_DAGSTER_TAGS)}
    )
    if dagster_run.parent_run_id:
        tags[PARENT_RUN_ID_TAG] = dagster_run.parent_run_id
        tags[ROOT_RUN_ID_TAG] = dagster_run.root_run_id
    if resource.parent_run_id:
        tags["mlflow.parentRunId"] = resource.parent_run_id
    for name in resource.env_to_tag or []:
        if name in os.environ:
            tags[name] = os.environ[name]
    tags.update(resource.extra_tags)
    return client.create_run(experiment_id, tags=tags).info.run_id


def _record_dagster_run(client: "MlflowClient", run_id: str, dagster_run):
    """Add this Dagster run to the MLflow run's list of writers (idempotent); return the run."""
    run = client.get_run(run_id)
    current = run.data.tags.get(DAGSTER_RUN_IDS_TAG, "").split()
    if dagster_run.run_id not in current:
        client.set_tag(run_id, DAGSTER_RUN_IDS_TAG, " ".join([*current, dagster_run.run_id]))
        if dagster_run.parent_run_id:
            client.set_tag(run_id, PARENT_RUN_ID_TAG, dagster_run.parent_run_id)
            client.set_tag(run_id, ROOT_RUN_ID_TAG, dagster_run.root_run_id)
    return run


def _delete_losing_candidates(client, experiment_id: str, winner: str, dagster_run) -> None:
    """Delete runs of this Dagster run other than the elected one.

    Losers delete their own candidate right after the election; this also removes a
    candidate whose process died between creating it and announcing it.
    """
    for run in client.search_runs(
        [experiment_id], filter_string=f"tags.{DAGSTER_RUN_ID_TAG} = '{dagster_run.run_id}'"
    ):
        if run.info.run_id != winner:
            client.delete_run(run.info.run_id)


def _experiment_id(client: "MlflowClient", name: str, tracking_uri: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(tracking_uri, name))
        except MlflowException as error:  # created concurrently by another step
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise MlflowBindingError(
                    f"Could not create MLflow experiment {name!r} in {tracking_uri}: {error}"
                ) from error
    if experiment.lifecycle_stage != "active":
        raise MlflowBindingError(
            f"MLflow experiment {name!r} (id {experiment.experiment_id}) is deleted in "
            f"{tracking_uri}: restore it (`mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}`) or choose another name (${EXPERIMENT_ENV_VAR})."
        )
    return experiment.experiment_id


def _check_tracking_uri(tracking_uri: str) -> None:
    """Refuse at once what MLflow would only refuse after minutes of retries."""
    parts = urlparse(tracking_uri)
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ValueError("an http(s) tracking URI needs a host, as in http://127.0.0.1:5000")


def _store_problem(tracking_uri: str, source: str, error: Exception) -> str:
    """A one-paragraph explanation of why the tracking store could not be used."""
    shown = f"{without_credentials(tracking_uri)!r} (from {source})"
    detail = str(error).strip().splitlines()[0][:400] if str(error).strip() else type(error).__name__
    if isinstance(error, ModuleNotFoundError) and "psycopg" in str(error):
        return (
            f"MLflow tracking URI {shown} needs a PostgreSQL driver that is not installed "
            f"({detail}): SQLAlchemy reads postgresql:// as psycopg 3; write "
            "postgresql+psycopg2:// to use the installed psycopg2."
        )
    if any(marker in str(error) for marker in ("Max retries exceeded", "Connection refused", "Failed to resolve")):
        return (
            f"MLflow tracking server {shown} is unreachable (gave up after "
            f"{os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '?')} retries with backoff): {detail}"
        )
    return f"MLflow tracking URI {shown} cannot be used: {detail}"


def mlflow_client(tracking_uri: str) -> "MlflowClient":
    """An MlflowClient for ``tracking_uri`` that retries transient store errors."""
    from mlflow import MlflowClient

    return _RetryingClient(MlflowClient(tracking_uri=tracking_uri))


class _RetryingClient:
    """An MlflowClient whose calls retry transient store errors a few times, with backoff.

    Concurrent step processes writing one run hit, for instance, the sqlite store's
    non-atomic tag upsert ("UNIQUE constraint failed: tags.key, tags.run_uuid") or
    "database is locked"; a second attempt succeeds. Other errors raise at once.
    """

    TRANSIENT = ("UNIQUE constraint failed", "database is locked", "could not serialize access")
    ATTEMPTS = 5

    def __init__(self, client: "MlflowClient"):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            import time

            for attempt in range(self.ATTEMPTS):
                try:
                    return attribute(*args, **kwargs)
                except Exception as error:
                    transient = any(marker in str(error) for marker in self.TRANSIENT)
                    if not transient or attempt == self.ATTEMPTS - 1:
                        raise
                    time.sleep(0.05 * 2**attempt)

        return call


def _sqlite_database(tracking_uri: str) -> Optional[Path]:
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes of this host (a sqlite file is local by definition)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def _sqlite_setup_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise a new sqlite store's first use across processes on this host.

    MLflow creates a sqlite store's tables (alembic migrations) on first use; two
    step processes doing that at once fail ("Online migration expected to match one
    row", "duplicate column name"). Once a process has set the store up, a marker
    file lets later ones skip the lock.
    """
    database = _sqlite_database(tracking_uri)
    if database is None or (database.with_name(database.name + ".ready").exists() and database.exists()):
        yield
        return
    with _file_lock(database.with_name(database.name + ".setup-lock")):
        yield
        database.with_name(database.name + ".ready").touch()


@contextmanager
def _sqlite_registry_lock(tracking_uri: str) -> Iterator[None]:
    """Serialise model registrations into one sqlite store across processes on this host.

    MLflow numbers a new version max+1 and retries a few times on a collision;
    runs finishing together on the embedded store need not rely on that. A server
    (PostgreSQL) needs no lock.
    """
    database = _sqlite_database(tracking_uri)
    if database is None:
        yield
        return
    with _file_lock(database.with_name(database.name + ".registry-lock")):
        yield


def _artifact_location(tracking_uri: str, experiment_name: str) -> Optional[str]:
    """Keep a sqlite store's artifacts next to its database, not in the current folder.

    (MLflow's default for a sqlite store is ``./mlruns`` relative to wherever the
    process happens to run.) Servers choose their own artifact location.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment_name)
    return (database.parent / "mlartifacts" / slug).as_uri()
