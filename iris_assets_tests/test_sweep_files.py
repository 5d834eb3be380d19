"""Sweep files: the trials they declare, their stable keys, and the errors for a bad file."""

import pytest

from iris_assets.tuning import launch
from iris_assets.tuning.space import MAX_TRIALS, SweepError, load, parse, trial_key, trial_params
from iris_harness.environment import REPO_ROOT


def test_a_grid_declares_every_combination_with_stable_keys():
    sweep = load(REPO_ROOT / "examples" / "sweep.yaml")
    assert sweep.name == "forest-size"
    assert sweep.keys == [
        "max_depth=2__n_estimators=10",
        "max_depth=2__n_estimators=50",
        "max_depth=2__n_estimators=100",
        "max_depth=10__n_estimators=10",
        "max_depth=10__n_estimators=50",
        "max_depth=10__n_estimators=100",
    ]
    # A key is its parameters: written in any order, the same trial has the same key, and back.
    assert trial_key({"n_estimators": 10, "max_depth": 2}) == trial_key({"max_depth": 2, "n_estimators": 10})
    assert all(trial_params(key) == trial for key, trial in zip(sweep.keys, sweep.trials, strict=True))
    assert trial_params("max_depth=none__n_estimators=5") == {"max_depth": None, "n_estimators": 5}


def test_a_random_search_is_reproducible_from_its_seed():
    spec = {
        "random": {
            "samples": 8,
            "seed": 7,
            "n_estimators": {"low": 10, "high": 300},
            "max_depth": {"low": 2, "high": 20},
        }
    }
    first, again = parse(spec), parse(spec)
    assert first.keys == again.keys and 1 < len(first.keys) <= 8  # duplicates drawn twice are one trial
    assert all(10 <= t["n_estimators"] <= 300 and 2 <= t["max_depth"] <= 20 for t in first.trials)
    other = parse({"random": {**spec["random"], "seed": 8}})
    assert other.keys != first.keys


@pytest.mark.parametrize(
    "spec, message",
    [
        ([1, 2], "must be a mapping with `name` and `grid` or `random`"),
        ({"grid": {"n_estimators": [10]}, "random": {"samples": 1}}, "give exactly one of `grid` and `random`"),
        ({"grid": {"n_estimators": [10]}, "extra": 1}, "unknown keys ['extra']; allowed: name, dataset, grid, random"),
        (
            {"dataset": "loans", "grid": {"n_estimators": [10]}},
            "dataset 'loans' is not allowed: expected one of iris, digits, wine (a dataset is a definition in datasets/)",
        ),
        ({"grid": {"learning_rate": [0.1]}}, "cannot tune ['learning_rate']; the model's hyperparameters are"),
        ({"grid": {"n_estimators": [0, 10]}}, "n_estimators=0: Input should be greater than 0"),
        ({"grid": {"max_depth": ["deep"]}}, "max_depth='deep'"),
        (
            {"random": {"samples": 0, "n_estimators": {"low": 1, "high": 2}}},
            "random.samples must be a whole number >= 1, not 0",
        ),
        (
            {"random": {"samples": 2, "n_estimators": {"low": 9, "high": 2}}},
            "low and high must be whole numbers, low <= high",
        ),
        ({"random": {"samples": 2, "n_estimators": [1, 2]}}, "random.n_estimators must be {low: ..., high: ...}"),
        (
            {"grid": {"n_estimators": list(range(1, 30)), "max_depth": list(range(1, 30))}},
            f"declares 841 trials; at most {MAX_TRIALS}",
        ),
    ],
)
def test_a_bad_sweep_is_refused_naming_what_is_wrong(spec, message):
    with pytest.raises(SweepError) as refused:
        parse(spec, "bad.yaml")
    assert str(refused.value).startswith("bad.yaml: ") and message in str(refused.value), str(refused.value)


@pytest.mark.parametrize(
    "key, message",
    [
        ("n_estimators=", "'n_estimators=' is not one of"),
        ("learning_rate=3", "'learning_rate=3' is not one of"),
        ("n_estimators=-1", "'n_estimators=-1' is not one of"),
        ("n_estimators=0", "n_estimators=0: Input should be greater than 0"),
    ],
)
def test_a_partition_key_that_is_not_a_trial_is_refused(key, message):
    """A partition added by hand in the UI is untrusted input too: the trial's step fails naming it."""
    with pytest.raises(SweepError) as refused:
        trial_params(key)
    assert str(refused.value).startswith(f"trial {key!r}: ") and message in str(refused.value), str(refused.value)


def test_the_cli_reports_a_bad_file_or_an_unreachable_webserver(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("grid: [unclosed\n")
    assert launch.main(["launch", str(broken), "--dagster-url", "http://127.0.0.1:9"]) == 2
    # One line, naming the file, line and column, and the problem (not PyYAML's caret diagram).
    assert capsys.readouterr().err == (
        f"iris-sweep: error: {broken}:2:1: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence)\n"
    )
    good = REPO_ROOT / "examples" / "sweep.yaml"
    assert launch.main(["launch", str(good), "--dagster-url", "http://127.0.0.1:9"]) == 2
    error = capsys.readouterr().err
    assert "the Dagster webserver at http://127.0.0.1:9 cannot be reached" in error


# -- spaces across model families (a conditional space: each family searched in its own) --------


def test_a_grid_across_families_declares_each_family_s_combinations():
    sweep = load(REPO_ROOT / "examples" / "families.yaml")
    assert sweep.name == "three-families"
    # The forest's keys are as they always were; another family's key starts with it.
    assert sweep.keys == [
        "max_depth=3__n_estimators=10",
        "max_depth=3__n_estimators=100",
        "family=svm__C=1.0",
        "family=svm__C=10.0",
        "family=logistic_regression__C=0.1",
        "family=logistic_regression__C=1.0",
    ]
    assert all(trial_params(key) == trial for key, trial in zip(sweep.keys, sweep.trials, strict=True))
    assert trial_params("family=svm__C=10.0") == {"family": "svm", "C": 10.0}
    # Values as the config reads them: `C: 1` and `C: 1.0` are one trial; layer sizes are lists.
    grid = parse({"grid": {"families": {"svm": {"C": [1, 1.0]}, "mlp": {"hidden_layer_sizes": [[8], [16, 8]]}}}})
    assert grid.keys == ["family=svm__C=1.0", "family=mlp__hidden_layer_sizes=8", "family=mlp__hidden_layer_sizes=16-8"]
    assert trial_params("family=mlp__alpha=1e-05__hidden_layer_sizes=16-8") == {
        "family": "mlp",
        "alpha": 1e-05,
        "hidden_layer_sizes": [16, 8],
    }
    # A family with an empty space: one trial with its defaults.
    assert parse({"grid": {"families": {"hist_gradient_boosting": {}}}}).keys == ["family=hist_gradient_boosting"]


def test_a_random_search_across_families_draws_samples_per_family_reproducibly():
    spec = {
        "random": {
            "samples": 5,
            "seed": 3,
            "families": {
                "random_forest": {"n_estimators": {"low": 10, "high": 300}},
                "svm": {"C": {"low": 0.01, "high": 100, "log": True}, "kernel": {"choice": ["rbf", "linear"]}},
                "hist_gradient_boosting": {"learning_rate": {"low": 0.05, "high": 0.5}},
            },
        }
    }
    first, again = parse(spec), parse(spec)
    assert first.keys == again.keys
    by_family: dict = {}
    for trial in first.trials:
        by_family.setdefault(trial.get("family", "random_forest"), []).append(trial)
    assert sorted(by_family) == ["hist_gradient_boosting", "random_forest", "svm"]
    assert all(len(trials) == 5 for trials in by_family.values())  # distinct draws: none lost to duplicates
    assert all(
        isinstance(t["n_estimators"], int) and 10 <= t["n_estimators"] <= 300 for t in by_family["random_forest"]
    )
    assert all(0.01 <= t["C"] <= 100 and t["kernel"] in ("rbf", "linear") for t in by_family["svm"])
    assert all(0.05 <= t["learning_rate"] <= 0.5 for t in by_family["hist_gradient_boosting"])
    assert all(trial_params(key) == trial for key, trial in zip(first.keys, first.trials, strict=True))
    assert parse({"random": {**spec["random"], "seed": 4}}).keys != first.keys


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"grid": {"families": {"xgboost": {}}}}, "no family ['xgboost']; the families are ['random_forest', 'svm',"),
        (
            {"grid": {"families": {"svm": {"n_estimators": [10]}}}},
            "svm cannot tune ['n_estimators']; its hyperparameters are ['C', 'kernel', 'gamma']",
        ),
        (
            {"grid": {"families": {"svm": {}}, "n_estimators": [10]}},
            "grid has `families`, so its hyperparameters go under their family, not ['n_estimators']",
        ),
        ({"grid": {"families": []}}, "grid.families must map families (random_forest, svm,"),
        ({"grid": {"C": [1.0]}}, "other families go under `families`: random_forest, svm, logistic_regression"),
        ({"grid": {"families": {"svm": {"C": [0]}}}}, "C=0: Input should be greater than 0"),
        ({"grid": {"families": {"mlp": {"hidden_layer_sizes": [[]]}}}}, "hidden_layer_sizes=[]: 1 to 10 layers"),
        (
            {"random": {"samples": 2, "families": {"svm": {"C": {"low": 0, "high": 1, "log": True}}}}},
            "random.C: low and high must be numbers, low <= high (and > 0 with log)",
        ),
        (
            {"random": {"samples": 2, "families": {"svm": {"kernel": {"low": 1, "high": 2}}}}},
            "random.kernel takes {choice: [...]}, not a range",
        ),
        (
            {"random": {"samples": 2, "families": {"svm": {"samples": 3}}}},
            "svm cannot tune ['samples']",
        ),
    ],
)
def test_a_bad_space_across_families_is_refused_naming_what_is_wrong(spec, message):
    with pytest.raises(SweepError) as refused:
        parse(spec, "bad.yaml")
    assert str(refused.value).startswith("bad.yaml: ") and message in str(refused.value), str(refused.value)


def test_a_bad_entry_in_a_file_is_one_line_with_its_line_and_column(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ngrid:\n  families:\n    svm: {C: [1]}\n    logistic_regression: {kernel: [rbf]}\n")
    with pytest.raises(SweepError) as refused:
        load(bad)
    assert str(refused.value) == (
        f"{bad}:5:27: logistic_regression cannot tune ['kernel']; its hyperparameters are ['C', 'max_iter']"
    )


@pytest.mark.parametrize(
    "key, message",
    [
        ("family=xgboost__C=1.0", "no family 'xgboost'"),
        ("family=svm__n_estimators=10", "'n_estimators=10' is not one of ['C', 'kernel', 'gamma']"),
        ("family=svm__kernel=RBF", "'kernel=RBF' is not one of"),
        ("family=svm__kernel=cubic", "kernel='cubic': Input should be 'rbf', 'linear', 'poly' or 'sigmoid'"),
    ],
)
def test_a_family_s_partition_key_that_is_not_a_trial_is_refused(key, message):
    with pytest.raises(SweepError) as refused:
        trial_params(key)
    assert str(refused.value).startswith(f"trial {key!r}: ") and message in str(refused.value), str(refused.value)


def test_every_sweep_shown_in_the_docs_is_valid():
    import re

    import yaml

    page = (REPO_ROOT / "docs" / "sweeps.md").read_text()
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", page, re.S)]
    assert len(blocks) >= 4
    for spec in blocks:
        spec = spec["ops"]["open_sweep"]["config"] if "ops" in spec else spec
        assert parse(spec, "docs/sweeps.md").keys
