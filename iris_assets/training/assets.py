"""The training asset: a model of the chosen family, random forest by default (original task "treinamento")."""

from collections.abc import Iterator
from typing import Any, Literal, Optional

import dagster as dg
from pydantic import Field, model_validator

from iris_assets import groups, settings
from iris_assets.data.schema import Splits
from iris_assets.plots import markdown_image
from iris_assets.tracking import MlflowRun
from iris_assets.training.checks import QUALITY_GATE, quality_gate_result, resolved_min_accuracy
from iris_assets.training.families import DEFAULT_FAMILY, FAMILIES, FAMILY, Family, FamilyName, build_model
from iris_assets.training.importance import feature_measure
from iris_assets.training.model import Classifier, model_requirements

FAMILY_TAG = "model_family"  # on the MLflow run, beside the param FAMILY


def _described(name: str, meaning: str) -> str:
    """A field's description: what it means, the families that read it (and what null means to them)."""
    users = [family for family in FAMILIES.values() if name in family.parameters]
    own = [f"{family.name} {family.own_defaults[name]!r}" for family in users if name in family.own_defaults]
    return f"{meaning} ({', '.join(f.name for f in users)}" + (f"; null: {', '.join(own)})" if own else ")")


class ModelConfig(dg.Config):
    """The model's family and its hyperparameters, flat: `n_estimators: 10` alone still means a forest of 10 trees.

    Each field belongs to the families named in its description; a field given for a
    family that does not take it is refused, naming the family's own. Why flat rather than
    a discriminated union: Dagster turns a union into a selector (`{svm: {C: 1}}`), which
    would make every existing run config (`{n_estimators: 10}`) invalid.
    """

    family: FamilyName = Field(default=DEFAULT_FAMILY, description=f"The estimator family: {', '.join(FAMILIES)}.")
    n_estimators: int = Field(default=100, gt=0, le=10_000, description=_described("n_estimators", "Number of trees"))
    max_depth: Optional[int] = Field(
        default=10,
        gt=0,
        le=1_000,
        description=_described("max_depth", "Maximum depth of a tree (null: unlimited)"),
    )
    random_state: int = Field(default=42, ge=0, le=2**32 - 1, description=_described("random_state", "Seed"))
    n_jobs: Optional[int] = Field(
        default=-1,
        ge=-1,
        le=1024,
        description=_described("n_jobs", "Cores used to fit and predict (-1: all; the same model whatever the number)"),
    )
    C: float = Field(
        default=1.0,
        gt=0,
        le=1e6,
        description=_described("C", "Inverse regularisation strength"),
    )
    kernel: Literal["rbf", "linear", "poly", "sigmoid"] = Field(
        default="rbf", description=_described("kernel", "Kernel")
    )
    gamma: Optional[float] = Field(default=None, gt=0, le=1e6, description=_described("gamma", "Kernel coefficient"))
    max_iter: Optional[int] = Field(
        default=None,
        gt=0,
        le=100_000,
        description=_described("max_iter", "Solver iterations, or boosting rounds"),
    )
    hidden_layer_sizes: list[int] = Field(
        default=[100],
        description=_described("hidden_layer_sizes", "Units of each hidden layer: 1 to 10 layers of 1 to 10,000"),
    )
    alpha: float = Field(default=1e-4, ge=0, le=100, description=_described("alpha", "L2 penalty"))
    learning_rate_init: float = Field(
        default=1e-3, gt=0, le=1, description=_described("learning_rate_init", "Adam's step size")
    )
    learning_rate: float = Field(
        default=0.1, gt=0, le=1, description=_described("learning_rate", "Shrinkage of each boosting round")
    )
    max_leaf_nodes: Optional[int] = Field(
        default=31,
        ge=2,
        le=10_000,
        description=_described("max_leaf_nodes", "Leaves per tree (null: unlimited)"),
    )
    min_accuracy: Optional[float] = Field(
        default=None,
        ge=0,
        le=1,
        description=f"Quality gate: least test accuracy. Default: $IRIS_MIN_ACCURACY, else {settings.DEFAULT_MIN_ACCURACY}.",
    )

    @model_validator(mode="after")
    def _only_the_family_s_parameters(self) -> "ModelConfig":
        # A field of another family is refused when it is given a value other than its
        # default. Not "given" alone: Dagster hands over what it pleases (it drops most
        # fields equal to their default, but passes a Literal's default); a default value of
        # another family's field changes nothing, any other value would be silently ignored.
        family = FAMILIES[self.family]
        foreign = sorted(
            name
            for name in (self.model_fields_set & HYPERPARAMETER_FIELDS) - set(family.parameters)
            if getattr(self, name) != type(self).model_fields[name].default
        )
        if foreign:
            owners = "; ".join(
                f"{name} belongs to {', '.join(f.name for f in FAMILIES.values() if name in f.parameters)}"
                for name in foreign
            )
            raise ValueError(f"family {self.family} takes only {', '.join(family.parameters)}; {owners}")
        layers = self.hidden_layer_sizes
        if not 1 <= len(layers) <= 10 or not all(1 <= units <= 10_000 for units in layers):
            raise ValueError(f"hidden_layer_sizes={layers}: 1 to 10 layers of 1 to 10,000 units each")
        return self

    @property
    def chosen_family(self) -> Family:
        return FAMILIES[self.family]

    def hyperparameters(self) -> dict[str, Any]:
        """The family's hyperparameters as the model uses them (a null that means "the family's own" resolved)."""
        family = self.chosen_family
        values = {name: getattr(self, name) for name in family.hyperparameters}
        return {
            name: family.own_defaults.get(name) if value is None and name in family.own_defaults else value
            for name, value in values.items()
        }

    def build(self) -> Any:
        """The unfitted model."""
        family = self.chosen_family
        return build_model(family.name, {**self.hyperparameters(), **{n: getattr(self, n) for n in family.runtime}})


# The fields that configure a family (everything but the family and the quality gate).
HYPERPARAMETER_FIELDS = frozenset(ModelConfig.model_fields) - {FAMILY, "min_accuracy"}
assert HYPERPARAMETER_FIELDS == {name for family in FAMILIES.values() for name in family.parameters}


def fit_and_log(config: ModelConfig, splits: Splits, mlflow: MlflowRun) -> tuple[Classifier, dict]:
    """Fit the configured model on the training split and log it (family, params, sklearn model, its
    per-feature measure); the model and its materialisation metadata. The pipeline's model and every
    sweep trial."""
    import mlflow.sklearn as mlflow_sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    family = config.chosen_family
    model = config.build()
    model.fit(splits.X_train, splits.y_train)
    hyperparameters = config.hyperparameters()
    params = {FAMILY: family.name, **hyperparameters}
    mlflow.log_params(params)
    mlflow.set_tags({FAMILY_TAG: family.name})
    input_example = splits.X_train.head(5)
    mlflow.log_model(
        mlflow_sklearn,
        model,
        name="model",
        # Fitted on class names, it answers names: in pyfunc and `mlflow models serve` too.
        signature=infer_signature(input_example, pd.Series(model.predict(input_example), name=splits.label)),
        input_example=input_example,
        serialization_format="skops",
        skops_trusted_types=list(family.skops_trusted_types),
        pip_requirements=model_requirements(),
    )
    measure = feature_measure(family, model, splits)
    mlflow.log_dict(measure.values, f"{measure.name}.json")
    mlflow.log_bytes(measure.png, f"{measure.name}.png")
    metadata = {
        FAMILY: family.name,
        # The params as logged to MLflow: the family and its hyperparameters.
        "params": dg.MetadataValue.json(params),
        "train_rows": len(splits.X_train),
        measure.name: dg.MetadataValue.json(measure.values),
        f"{measure.name}_chart": dg.MetadataValue.md(markdown_image(measure.png, measure.name.replace("_", " "))),
    }
    return model, metadata


@dg.asset(group_name=groups.PIPELINE, kinds={"scikitlearn", "mlflow"}, check_specs=[QUALITY_GATE])
def model(context: dg.AssetExecutionContext, config: ModelConfig, splits: Splits, mlflow: MlflowRun) -> Iterator:
    """A model of the configured family (a random forest by default) fitted on the training split,
    logged with MLflow's sklearn flavour.

    Its quality gate runs here, after the model is stored: a model below it fails the step.
    """
    model, metadata = fit_and_log(config, splits, mlflow)
    yield dg.Output(model, metadata={**metadata, **mlflow.link(context)})
    yield quality_gate_result(model, splits, resolved_min_accuracy(config.min_accuracy), mlflow)
