"""The packaging asset: the model as ONNX (original task "empacotamento").

The converted model is checked against scikit-learn on the test split before it
is published: identical labels and probabilities within the tolerance that
``parity_atol`` sets for the model's number of trees (``packaging.onnx.parity_tolerance``);
a mismatch fails the asset. It is logged with MLflow's onnx flavour, with a
signature (four named columns in; ``species`` and a probability per species out)
and an input example, so MLflow's own clients can serve it.
"""

from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from iris_assets import groups
from iris_assets.data.schema import Splits
from iris_assets.packaging.checks import PARITY, parity_result
from iris_assets.packaging.onnx import (
    DEFAULT_PARITY_ATOL,
    ONNX_LOGGED_MODEL,
    OnnxClassifier,
    onnx_artifact,
    onnx_requirements,
    parity,
    parity_tolerance,
    to_onnx,
)
from iris_assets.tracking import MlflowRun
from iris_assets.training.families import ensemble_size, family_of
from iris_assets.training.model import Classifier


class OnnxConfig(dg.Config):
    parity_atol: float = Field(
        default=DEFAULT_PARITY_ATOL,
        ge=0,
        le=1,
        description="Largest allowed difference between ONNX and scikit-learn probabilities, per 100 trees "
        "(forest trees or boosting iterations; float32 rounding grows with them; other families: the allowance itself).",
    )


class OnnxParityError(Exception):
    """The ONNX model does not reproduce scikit-learn's predictions."""

    def __init__(self, message: str, check: dg.AssetCheckResult):
        super().__init__(message)
        self.check = check


def package_and_log(
    model: Classifier, splits: Splits, parity_atol: float, mlflow: MlflowRun
) -> tuple[bytes, dg.AssetCheckResult, dict]:
    """Convert the model to ONNX, check its parity on the test split and, if it holds, log it
    (the file, and MLflow's onnx flavour with signature and input example); the ONNX bytes,
    the parity check's result and the materialisation metadata. Raises OnnxParityError
    (after recording the failed check) when parity does not hold."""
    onnx_bytes = to_onnx(
        model,
        splits.X_test.shape[1],
        features=splits.features,
        label=splits.label,
        dataset=splits.dataset,
        class_order=splits.class_names,
    )
    trees, artifact = ensemble_size(model), onnx_artifact(family_of(model).name, splits.dataset)
    tolerance = parity_tolerance(parity_atol, trees)
    label_mismatches, max_difference = parity(model, onnx_bytes, splits.X_test, tolerance)
    checked = parity_result(label_mismatches, max_difference, tolerance, mlflow)
    if not checked.passed:
        raise OnnxParityError(
            f"ONNX model disagrees with scikit-learn on the test split: {label_mismatches} "
            f"different labels, largest probability difference {max_difference:.3g} (allowed: "
            f"{tolerance:.3g}, parity_atol={parity_atol} per 100 trees, {trees} trees)",
            checked,
        )
    mlflow.log_bytes(onnx_bytes, artifact)
    import mlflow.onnx as mlflow_onnx
    import numpy as np
    import onnx
    import pandas as pd
    from mlflow.models import infer_signature

    example = splits.X_test.head(5)
    answer = OnnxClassifier(onnx_bytes).run(example.to_numpy(np.float32))
    output = pd.DataFrame(
        {splits.label: answer.labels, **dict(zip(answer.class_names, answer.probabilities.T, strict=True))}
    )
    mlflow.log_model(
        mlflow_onnx,
        onnx.load_from_string(onnx_bytes),
        name=ONNX_LOGGED_MODEL,
        signature=infer_signature(example, output),
        input_example=example,
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=onnx_requirements(),
    )
    metadata = {
        "size_bytes": len(onnx_bytes),
        "test_rows_checked": len(splits.X_test),
        "max_probability_difference": dg.MetadataValue.float(max_difference),
        "parity_tolerance": dg.MetadataValue.float(tolerance),
        "mlflow_artifact": artifact,
    }
    return onnx_bytes, checked, metadata


@dg.asset(group_name=groups.PIPELINE, kinds={"onnx", "mlflow"}, check_specs=[PARITY])
def onnx_model(
    context: dg.AssetExecutionContext, config: OnnxConfig, model: Classifier, splits: Splits, mlflow: MlflowRun
) -> Iterator:
    """The model converted with skl2onnx, verified with onnxruntime on the test split (its parity check)."""
    yield from onnx_model_events(context, config, model, splits, mlflow)


def onnx_model_events(
    context: dg.AssetExecutionContext, config: OnnxConfig, model: Classifier, splits: Splits, mlflow: MlflowRun
) -> Iterator:
    """What an ``onnx_model`` asset yields (Iris's, and each dataset's): the ONNX bytes and the parity check."""
    try:
        onnx_bytes, checked, metadata = package_and_log(model, splits, config.parity_atol, mlflow)
    except OnnxParityError as error:
        yield error.check  # the failed check shows in the UI; the model is not published
        raise
    yield dg.Output(onnx_bytes, metadata={**metadata, **mlflow.link(context)})
    yield checked
