"""Converting a fitted model (any family) to ONNX, running it, and measuring its parity with scikit-learn.

The ONNX model has one float input ``X`` (the four measurements, in the order of
FEATURES) and named outputs that MLflow's onnx pyfunc turns into a DataFrame:
``species`` (the predicted name) and one probability column per class, named by
the class (skl2onnx's ``zipmap='columns'``). So ``mlflow.pyfunc.load_model`` and
``mlflow models serve`` answer species names with their probabilities, and every
reader maps probabilities to species by the model's own class names.
"""

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from iris_assets.data.schema import FEATURES, SPECIES

ONNX_FOLDER = "onnx_model"  # a run's ONNX file is the one .onnx file in this artifact folder
ONNX_LOGGED_MODEL = "onnx"  # the same model through MLflow's onnx flavour (registry, pyfunc)
INPUT_NAME = "X"
LABEL_OUTPUT = "species"  # Iris's label output; another dataset's is its label column (metadata LABEL_KEY)
# What the ONNX file says of itself (its metadata_props), so a client reading the file alone
# knows the dataset, the input columns in order and the label's name. Models packaged before
# datasets existed carry none of them: they are Iris's (FEATURES, "species").
DATASET_KEY, FEATURES_KEY, LABEL_KEY = "dataset", "features", "label"
# Largest allowed difference between ONNX (float32) and scikit-learn (float64) class
# probabilities, per 100 trees; the asset's config default. See ``parity_tolerance``.
DEFAULT_PARITY_ATOL = 1e-5


def onnx_artifact(family: str, dataset: str = "iris") -> str:
    """Where a run's ONNX file is: ``onnx_model/iris_random_forest.onnx`` for the forest, where the
    original pipeline put it, and ``onnx_model/<dataset>_<family>.onnx`` for every other family or dataset."""
    return f"{ONNX_FOLDER}/{dataset}_{family}.onnx"


def to_onnx(
    model: Any,
    n_features: int,
    *,
    features: Optional[Sequence[str]] = None,
    label: str = LABEL_OUTPUT,
    dataset: Optional[str] = None,
    class_order: Optional[Sequence[str]] = None,
) -> bytes:
    """Convert a fitted classifier (an estimator, or a Pipeline ending in one) to the ONNX model described above.

    With ``features`` and ``dataset``, the file records them and ``label`` in its metadata_props; with
    ``class_order``, the probability outputs follow it (the dataset's documented order, not scikit-learn's
    text order of its ``classes_``), so every client lists classes in the same order."""
    import warnings

    import numpy as np
    from skl2onnx import to_onnx as skl_to_onnx

    with warnings.catch_warnings():
        # skl2onnx 1.20 reads SVC's deprecated probA_/probB_ (even without probability=True) and
        # hands onnx booleans for the gradient-boosting trees' missing-value flags; both are
        # its own, and the converted model is checked for parity whatever they say.
        warnings.filterwarnings("ignore", message="Attribute `prob[AB]_` was deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*Expected an int, got a boolean", category=DeprecationWarning)
        onnx_model = skl_to_onnx(
            model,
            np.zeros((1, n_features), dtype=np.float32),  # skl2onnx names this input "X"
            # Keyed by the model itself, a Pipeline included: skl2onnx applies it to the classifier at its end.
            options={id(model): {"zipmap": "columns"}},
        )
    # skl2onnx names the label output "output_label" and each class column "s<name>"
    # ("i<number>" for integer labels); give them the names readers look for.
    prefix = "s" if isinstance(model.classes_[0], str) else "i"
    renamed = {"output_label": label, **{f"{prefix}{c}": str(c) for c in model.classes_}}
    graph = onnx_model.graph
    _move_aside(graph, set(renamed.values()) - set(renamed))
    for node in graph.node:
        node.output[:] = [renamed.get(name, name) for name in node.output]
    for value in [*graph.output, *graph.value_info]:
        value.name = renamed.get(value.name, value.name)
    if class_order is not None:
        wanted = [label, *map(str, class_order)]
        by_name = {output.name: output for output in graph.output}
        if sorted(wanted) == sorted(by_name):
            ordered = []
            for name in wanted:
                copy = type(by_name[name])()
                copy.CopyFrom(by_name[name])
                ordered.append(copy)
            del graph.output[:]
            graph.output.extend(ordered)
    if features is not None and dataset is not None:
        import json

        for key, value in ((DATASET_KEY, dataset), (FEATURES_KEY, json.dumps(list(features))), (LABEL_KEY, label)):
            entry = onnx_model.metadata_props.add()
            entry.key, entry.value = key, value
    return onnx_model.SerializeToString()


def _move_aside(graph: Any, wanted: set[str]) -> None:
    """Rename the converter's own intermediate names that the outputs are about to take.

    skl2onnx names some intermediates ``label``, ``probabilities``...; a dataset whose label
    column (or a class) has such a name would otherwise define it twice (an invalid model)."""
    used = {name for node in graph.node for name in [*node.input, *node.output]}
    used |= {item.name for item in [*graph.initializer, *graph.input, *graph.value_info]}
    clashes = wanted & used
    if not clashes:
        return
    aside = {}
    for name in sorted(clashes):
        new = f"{name}_internal"
        while new in used:
            new += "_"
        aside[name] = new
    for node in graph.node:
        node.input[:] = [aside.get(name, name) for name in node.input]
        node.output[:] = [aside.get(name, name) for name in node.output]
    for item in [*graph.initializer, *graph.input, *graph.value_info]:
        item.name = aside.get(item.name, item.name)


def onnx_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "onnx", "onnxruntime", "numpy", "pandas")]


def onnx_session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # fastest for this model size on small machines
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class OnnxOutputs:
    labels: list[str]
    class_names: list[str]
    probabilities: Any  # numpy array, one row per input row, one column per class_names entry


class OnnxClassifier:
    """An ONNX model of this project with its own class list; one onnxruntime session, reused."""

    def __init__(self, onnx_bytes: bytes):
        import json

        self.session = onnx_session(onnx_bytes)
        described = self.session.get_modelmeta().custom_metadata_map
        # A model without metadata is Iris's (packaged before datasets existed).
        self.dataset: str = described.get(DATASET_KEY, "iris")
        self.features: list[str] = json.loads(described[FEATURES_KEY]) if FEATURES_KEY in described else list(FEATURES)
        self.label: str = described.get(LABEL_KEY, LABEL_OUTPUT)
        outputs = [output.name for output in self.session.get_outputs()]
        # This project's models name one output per class; earlier versions' models
        # output a probability matrix whose columns follow the classifier's labels.
        self._legacy = self.label not in outputs
        self.class_names = _class_names(onnx_bytes) if self._legacy else [n for n in outputs if n != self.label]
        # Looked up once: a single-row prediction takes microseconds, and these lookups cost as much.
        self._input_name = self.session.get_inputs()[0].name
        self._outputs = ["label", "probabilities"] if self._legacy else [self.label, *self.class_names]

    def run(self, features: Any) -> OnnxOutputs:
        """Predict float32 ``features`` (rows of the four measurements); probabilities by class name.

        Models packaged by earlier versions of this project output ``label`` (the
        integer target, an index in SPECIES) and a ``probabilities`` matrix.
        """
        import numpy as np

        labels, *probabilities = self.session.run(self._outputs, {self._input_name: features})
        if self._legacy:
            return OnnxOutputs([SPECIES[int(label)] for label in labels], self.class_names, probabilities[0])
        return OnnxOutputs(labels.tolist(), self.class_names, np.column_stack(probabilities))


def _class_names(onnx_bytes: bytes) -> list[str]:
    """The classifier node's class labels, as species names."""
    import onnx

    for node in onnx.load_from_string(onnx_bytes).graph.node:
        for attribute in node.attribute:
            if attribute.name == "classlabels_strings":
                return [label.decode() for label in attribute.strings]
            if attribute.name == "classlabels_int64s":  # an earlier version's integer target
                return [SPECIES[int(label)] for label in attribute.ints]
    raise ValueError("not an ONNX classifier: no node holds class labels")


def parity_tolerance(parity_atol: float, n_trees: int) -> float:
    """The largest probability difference explained by float32 arithmetic in a model summing ``n_trees`` trees.

    ONNX averages a forest's class probabilities in float32, scikit-learn in float64.
    Summing n terms in [0, 1] in float32 and dividing by n errs by at most about
    n * 2**-24 (recursive summation), so the error bound grows linearly with the number
    of trees (measured: 6.6e-7 at 100 trees, 1.9e-5 at 2,000, 2.7e-5 at 4,000).
    ``parity_atol`` is the allowance per 100 trees; the default, 1e-5, is above the
    worst case 100 * 2**-24 = 6e-6, and a wrong conversion (another class order, a lost
    tree) differs by orders of magnitude more. Gradient boosting sums one tree per class
    and iteration before its softmax (``n_trees``: its iterations; measured 0.9e-7 to
    1.3e-7 at 20 to 300 iterations on Iris); the models that are no ensemble (SVM, logistic
    regression, MLP: ``n_trees`` 1) get the allowance itself (measured 1e-7 to 3e-7).
    """
    return parity_atol * max(1.0, n_trees / 100)


def parity(model: Any, onnx_bytes: bytes, X: Any, tolerance: float) -> tuple[int, float]:
    """(labels that differ beyond a near-tie, largest probability difference) of ONNX vs scikit-learn on ``X``.

    Probabilities are compared class by class, by name. A label may differ only
    where scikit-learn's two most probable classes are closer than ``tolerance``
    (a tie that float32 rounding can break either way).
    """
    import numpy as np

    outputs = OnnxClassifier(onnx_bytes).run(np.asarray(X, dtype=np.float32))
    sk_classes = [str(c) for c in model.classes_]
    sk_probabilities = model.predict_proba(X)
    columns = [outputs.class_names.index(c) for c in sk_classes]
    difference = float(np.abs(outputs.probabilities[:, columns] - sk_probabilities).max())
    top_two = np.sort(sk_probabilities, axis=1)[:, -2:] if sk_probabilities.shape[1] > 1 else None
    near_tie = (top_two[:, 1] - top_two[:, 0] <= tolerance) if top_two is not None else np.zeros(len(X), bool)
    differ = np.asarray(outputs.labels) != np.asarray([str(label) for label in model.predict(X)])
    return int((differ & ~near_tie).sum()), difference
