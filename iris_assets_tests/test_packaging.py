"""The ONNX parity criterion: sound for every allowed forest, strict enough to catch a wrong conversion."""

import numpy as np
import onnx
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

from iris_assets.data.schema import SPECIES
from iris_assets.packaging.onnx import DEFAULT_PARITY_ATOL, parity, parity_tolerance, to_onnx


@pytest.fixture(scope="module")
def iris():
    data = load_iris()
    return data.data, np.array(SPECIES)[data.target]


def _forest(iris, trees: int, seed: int = 42) -> RandomForestClassifier:
    X, y = iris
    return RandomForestClassifier(n_estimators=trees, max_depth=10, random_state=seed).fit(X, y)


def test_a_large_forest_passes(iris):
    """2,000 trees: float32 averaging differs from float64 by ~1.9e-5, more than the 1e-5 a fixed bound allowed."""
    forest = _forest(iris, 2000)
    tolerance = parity_tolerance(DEFAULT_PARITY_ATOL, len(forest.estimators_))
    mismatches, difference = parity(forest, to_onnx(forest, 4), iris[0], tolerance)
    assert mismatches == 0 and difference <= tolerance, (mismatches, difference, tolerance)
    assert tolerance == pytest.approx(2e-4)


@pytest.fixture(scope="module")
def small(iris):
    forest = _forest(iris, 100)
    return forest, to_onnx(forest, 4), parity_tolerance(DEFAULT_PARITY_ATOL, 100)


def test_the_right_conversion_passes(iris, small):
    forest, converted, tolerance = small
    mismatches, difference = parity(forest, converted, iris[0], tolerance)
    assert mismatches == 0 and difference <= tolerance


def test_another_forest_fails(iris, small):
    """A conversion of the wrong model (another seed): labels or probabilities differ far beyond the bound."""
    forest, _, tolerance = small
    other = _forest(iris, 100, seed=7)
    mismatches, difference = parity(forest, to_onnx(other, 4), iris[0], tolerance)
    assert mismatches > 0 or difference > 100 * tolerance, (mismatches, difference)


def test_swapped_class_columns_fail(iris, small):
    """Probabilities under the wrong class names (a broken output mapping) are caught."""
    forest, converted, tolerance = small
    model = onnx.load_from_string(converted)
    swap = {"setosa": "virginica", "virginica": "setosa"}
    for node in model.graph.node:
        node.output[:] = [swap.get(name, name) for name in node.output]
    for value in model.graph.output:
        value.name = swap.get(value.name, value.name)
    mismatches, difference = parity(forest, model.SerializeToString(), iris[0], tolerance)
    assert difference > 0.5, difference


def test_zero_tolerance_stays_zero():
    """parity_atol 0 (the tests' way to force a parity failure) allows nothing, whatever the size."""
    assert parity_tolerance(0.0, 5000) == 0.0
