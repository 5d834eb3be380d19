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
        ({"grid": {"n_estimators": [10]}, "extra": 1}, "unknown keys ['extra']; allowed: name, grid, random"),
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
