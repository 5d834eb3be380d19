"""Pictures of the results, rendered headless (no display needed on servers)."""

import base64
import io


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # headless: never look for a display
    from matplotlib.figure import Figure

    return Figure(figsize=(4.5, 3.6), dpi=100, layout="constrained")


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def confusion_matrix_png(y_true, y_pred, class_names: list[str]) -> bytes:
    from sklearn.metrics import ConfusionMatrixDisplay

    figure = _figure()
    axes = figure.subplots()
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=class_names,
        ax=axes,
        colorbar=False,
    )
    axes.set_title("Confusion matrix (test split)")
    return _png(figure)


def feature_importance_png(importance: dict[str, float], measure: str = "mean decrease in impurity") -> bytes:
    figure = _figure()
    axes = figure.subplots()
    names = list(importance)[::-1]
    axes.barh(names, [importance[n] for n in names], color="#4c72b0")
    axes.set_xlabel(f"importance ({measure})")
    axes.set_title("Feature importance")
    return _png(figure)


def coefficients_png(coefficients: dict[str, dict[str, float]]) -> bytes:
    """A linear model's coefficients: a group of bars per feature, one bar per class."""
    import numpy as np

    figure = _figure()
    axes = figure.subplots()
    classes = list(coefficients)
    features = list(next(iter(coefficients.values())))
    height = 0.8 / len(classes)
    positions = np.arange(len(features))
    for i, name in enumerate(classes):
        axes.barh(positions + i * height, [coefficients[name][f] for f in features], height, label=name)
    axes.set_yticks(positions + height * (len(classes) - 1) / 2, features)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.set_xlabel("coefficient (standardised features)")
    axes.set_title("Coefficients by class")
    axes.legend(fontsize="small")
    return _png(figure)


def markdown_image(png: bytes, alt: str) -> str:
    """A Markdown image with the PNG inline, which the Dagster UI renders in metadata."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def metric_by_parameter_png(trials: list[tuple[dict, float]], metric: str) -> bytes:
    """One panel per hyperparameter that varies: the metric of every trial against its value.

    Trials of several model families (their ``family`` parameter) are coloured by family, so a
    hyperparameter two families share (an SVM's and a logistic regression's ``C``) is not
    read as one curve.
    """
    varying = sorted(  # among the trials that have it (a family's hyperparameter is absent from the others)
        {name for params, _ in trials for name in params if len({str(p[name]) for p, _ in trials if name in p}) > 1}
    )
    names = varying or sorted({name for params, _ in trials for name in params})[:1]
    from iris_assets.training.families import FAMILY

    families = sorted({str(params.get(FAMILY)) for params, _ in trials})
    colours = {family: "#4c72b0" if i == 0 else f"C{i}" for i, family in enumerate(families)}  # matplotlib's cycle
    figure = _figure()
    figure.set_size_inches(4.0 * max(1, len(names)), 3.4)
    for axes, name in zip(figure.subplots(1, len(names), squeeze=False)[0], names, strict=True):
        for family in families:
            # Numbers on a scale, words (a family, a kernel) as categories.
            points = [
                (params.get(name), score)
                for params, score in trials
                if str(params.get(FAMILY)) == family and isinstance(params.get(name), (int, float, str))
            ]
            if points:
                xs, ys = [x for x, _ in points], [y for _, y in points]
                axes.scatter(xs, ys, color=colours[family], label=family if len(families) > 1 else None)
        axes.set_xlabel(name)
        axes.set_ylabel(metric)
        axes.set_title(f"{metric} by {name}")
        if len(families) > 1 and name != FAMILY:
            axes.legend(fontsize="small")
    return _png(figure)
