"""The binding's one error type."""


class MlflowBindingError(Exception):
    """The MLflow run for this Dagster run could not be opened or used."""
