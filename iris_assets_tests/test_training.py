"""The forest uses every core and stays the same model: n_jobs changes speed, never predictions."""

import numpy as np
from sklearn.datasets import load_iris

from iris_assets.data.schema import SPECIES
from iris_assets.training.model import build_forest


def test_all_cores_give_the_single_core_forest():
    data = load_iris()
    y = np.array(SPECIES)[data.target]
    one = build_forest(100, 10, 42, n_jobs=1).fit(data.data, y)
    every = build_forest(100, 10, 42, n_jobs=-1).fit(data.data, y)
    assert (one.predict(data.data) == every.predict(data.data)).all()
    assert np.array_equal(one.predict_proba(data.data), every.predict_proba(data.data))
    assert np.array_equal(one.feature_importances_, every.feature_importances_)
