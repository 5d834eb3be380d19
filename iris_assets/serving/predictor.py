"""Predict Iris species with the packaged ONNX model: ``IrisOnnxPredictor``.

The model comes from a ``.onnx`` file, an MLflow run (``runs:/<run_id>``, the run's
``onnx_model/iris_<family>.onnx``) or the registry (``models:/<name>@<alias>`` or
``models:/<name>/<version>``). The onnxruntime session is created once per
``IrisOnnxPredictor`` and reused for every call.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from iris_assets import settings
from iris_assets.packaging.onnx import ONNX_FOLDER, OnnxClassifier, onnx_artifact
from iris_assets.training.families import DEFAULT_FAMILY


class PredictionError(Exception):
    """Bad input or an unknown model reference; the message says which and why."""


@dataclass(frozen=True)
class Predictions:
    species: list[str]
    class_names: list[str]  # the model's own classes: the columns of ``probabilities``
    probabilities: Any  # numpy array, one row per input row, one column per class_names entry


class IrisOnnxPredictor:
    def __init__(self, onnx_bytes: bytes):
        import numpy as np

        self._np = np
        try:
            self._model = OnnxClassifier(onnx_bytes)
        except Exception as error:  # onnx and onnxruntime raise their own exception types
            raise PredictionError(f"not a loadable ONNX model of this project ({error})") from None
        self._session = self._model.session
        self.class_names = self._model.class_names
        # What the model says of itself (Iris's for a model packaged before datasets existed).
        self.dataset, self.features, self.label = self._model.dataset, self._model.features, self._model.label

    @classmethod
    def load(cls, reference: str, tracking_uri: Optional[str] = None) -> "IrisOnnxPredictor":
        return cls(_read_model(reference, tracking_uri))

    def predict(self, rows) -> Predictions:
        features = self._np.asarray(rows, dtype=self._np.float32)
        if features.ndim != 2 or features.shape[1] != len(self.features):
            raise PredictionError(
                f"expected rows of the {len(self.features)} features of dataset {self.dataset!r}, got shape "
                f"{features.shape}"
            )
        outputs = self._model.run(features)
        return Predictions(outputs.labels, outputs.class_names, outputs.probabilities)


def _read_model(reference: str, tracking_uri: Optional[str]) -> bytes:
    if not reference.startswith(("runs:/", "models:/")):
        path = Path(reference)
        if not path.is_file():
            raise PredictionError(
                f"model {reference!r}: no such file (give a .onnx file, runs:/<run_id> or models:/<name>@<alias>)"
            )
        return path.read_bytes()

    from mlflow.exceptions import MlflowException

    from iris_assets.tracking.redaction import redacted
    from iris_assets.tracking.store import mlflow_client

    store = tracking_uri or settings.current().resolved_tracking_uri
    try:
        client = mlflow_client(store)
        if reference.startswith("runs:/"):
            artifact_uri = reference
        else:
            name, alias_or_version = _parse_models_uri(reference)
            version = (
                client.get_model_version(name, alias_or_version)
                if alias_or_version.isdigit()
                else client.get_model_version_by_alias(name, alias_or_version)
            )
            artifact_uri = version.tags.get("onnx_artifact_uri") or f"runs:/{version.run_id}/"
        run_id, _, artifact = artifact_uri.removeprefix("runs:/").partition("/")
        artifact = artifact or _onnx_file(client, run_id)
        return Path(client.download_artifacts(run_id, artifact)).read_bytes()
    except MlflowException as error:
        raise PredictionError(f"model {reference!r}: {redacted(error.message)}") from None
    except OSError as error:
        raise PredictionError(f"model {reference!r}: {error}") from None
    except Exception as error:  # whatever the store raises (a garbage URI, a server down), one line
        detail = redacted(str(error).strip().splitlines()[0][:300]) if str(error).strip() else ""
        raise PredictionError(
            f"model {reference!r}: the tracking store {redacted(store)!r} cannot be used ({type(error).__name__}: {detail})"
        ) from None


def _onnx_file(client: Any, run_id: str) -> str:
    """The run's ONNX file (``onnx_model/iris_<family>.onnx``): the one .onnx file in its ONNX folder."""
    found = [item.path for item in client.list_artifacts(run_id, ONNX_FOLDER) if item.path.endswith(".onnx")]
    # None (or several, which this project never logs): name the forest's, so the error says what was looked for.
    return found[0] if len(found) == 1 else onnx_artifact(DEFAULT_FAMILY)


def _parse_models_uri(reference: str) -> tuple[str, str]:
    body = reference.removeprefix("models:/")
    name, sep, rest = body.partition("@") if "@" in body else body.partition("/")
    if not name or not sep or not rest:
        raise PredictionError(f"model {reference!r}: expected models:/<name>@<alias> or models:/<name>/<version>")
    return name, rest
