"""A sweep file, and the trials it declares: each a stable key derived from its hyperparameters.

    # examples/sweep.yaml
    name: forest-size
    grid:                        # every combination
      n_estimators: [25, 50, 100]
      max_depth: [3, 10]

or

    name: forest-random
    random:                      # `samples` draws, reproducible from `seed`
      samples: 8
      seed: 7
      n_estimators: {low: 10, high: 300}    # whole numbers, uniform
      max_depth: {low: 2, high: 20}

A flat space is a random forest's, as it always was. A space across model families (a
conditional space: each family searched in its own) names them under ``families``:

    # examples/families.yaml
    name: three-families
    grid:                        # every combination of each family's grid
      families:
        random_forest: {n_estimators: [10, 100], max_depth: [3]}
        svm: {C: [0.1, 1, 10]}
        logistic_regression: {C: [0.1, 1]}

    random:                      # `samples` draws per family
      samples: 4
      seed: 7
      families:
        svm: {C: {low: 0.01, high: 100, log: true}, kernel: {choice: [rbf, linear]}}
        hist_gradient_boosting: {learning_rate: {low: 0.01, high: 0.5}}

A range ``{low, high}`` draws whole numbers for a whole-number hyperparameter and real
numbers (4 significant digits; ``log: true`` for a log-uniform draw) for a real one;
``{choice: [...]}`` draws one of the listed values. The hyperparameters are the ``model``
asset's, validated by its config (``training/assets.py``; each family takes its own). A
trial's key is its parameters in a canonical form, its family first unless it is the
default forest: ``max_depth=3__n_estimators=25``, ``family=svm__C=0.1``. The same trial
always has the same key, so declaring a sweep again adds only the trials it did not have.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union, get_args, get_origin

from iris_assets.training.families import DEFAULT_FAMILY, FAMILIES, FAMILY

TUNABLE = FAMILIES[DEFAULT_FAMILY].hyperparameters  # a flat space's
SEPARATOR = "__"
MAX_TRIALS = 500
FAMILIES_KEY = "families"
SIGNIFICANT_DIGITS = 4  # of a real number drawn at random: short keys, and nothing a model can tell apart
# A value in a trial key: none, a whole or real number, a word, or whole numbers joined by "-" (layer sizes).
_KEY_VALUE = re.compile(r"none|\d+|\d+(\.\d+)?(e[+-]\d+)?|[a-z]+|\d+(-\d+)+")


class SweepError(ValueError):
    """A sweep file that cannot be used; the message says where and why.

    ``at`` is the path of the offending entry in the file (keys and list indices), so that
    ``load`` can say its line and column."""

    def __init__(self, message: str, at: tuple = ()):
        super().__init__(message)
        self.at = at


@dataclass(frozen=True)
class Sweep:
    name: str
    trials: list[dict[str, Any]]
    dataset: str = "iris"  # whose pipeline it trains for (tuning/target.py)

    @property
    def keys(self) -> list[str]:
        return [trial_key(trial) for trial in self.trials]


def trial_key(params: dict[str, Any]) -> str:
    family = params.get(FAMILY, DEFAULT_FAMILY)
    names = sorted(name for name in params if name != FAMILY)
    parts = [f"{name}={_text(params[name])}" for name in names]
    return SEPARATOR.join(parts if family == DEFAULT_FAMILY else [f"{FAMILY}={family}", *parts])


def trial_params(key: str) -> dict[str, Any]:
    """The hyperparameters a trial key stands for (validated as the model's config)."""
    parts = key.split(SEPARATOR)
    family: str = DEFAULT_FAMILY
    if parts[0].startswith(f"{FAMILY}="):
        family = parts.pop(0).partition("=")[2]
        if family not in FAMILIES:
            raise SweepError(f"trial {key!r}: no family {family!r}; the families are {list(FAMILIES)}")
    tunable = FAMILIES[family].hyperparameters
    params: dict[str, Any] = {} if family == DEFAULT_FAMILY else {FAMILY: family}
    for part in parts:
        name, _, value = part.partition("=")
        if name not in tunable or not _KEY_VALUE.fullmatch(value):
            raise SweepError(f"trial {key!r}: {part!r} is not one of {list(tunable)} = a value")
        params[name] = _value(name, value)
    return _validate(params, f"trial {key!r}")


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return "-".join(map(str, value))
    return str(value)


def _kind(name: str) -> Any:
    """What the config field ``name`` holds: int, float, str (a Literal's words) or list (Optional unwrapped)."""
    from iris_assets.training.assets import ModelConfig

    annotation = ModelConfig.model_fields[name].annotation
    if get_origin(annotation) is Union:  # Optional[X]
        annotation = next(t for t in get_args(annotation) if t is not type(None))
    origin = get_origin(annotation)
    if origin is Literal:
        return str
    return list if origin is list else annotation


def _value(name: str, text: str) -> Any:
    if text == "none":
        return None
    kind = _kind(name)
    if kind is list:
        return [int(units) for units in text.split("-")]
    return kind(text)


def load(path: str | Path) -> Sweep:
    import yaml

    try:
        source = Path(path).read_text()
        spec = yaml.safe_load(source)
    except OSError as error:
        raise SweepError(f"{path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:  # one line: where, and what (PyYAML's own message draws a caret diagram)
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or "not valid YAML"
        context = getattr(error, "context", None)
        raise SweepError(f"{where}: {problem}" + (f" ({context})" if context else "")) from None
    try:
        return parse(spec, str(path))
    except SweepError as error:
        line_column = _position(yaml.compose(source), error.at)
        if line_column is None:
            raise
        raise SweepError(str(error).replace(f"{path}: ", f"{path}:{line_column}: ", 1), error.at) from None


def _position(node: Any, at: tuple) -> Optional[str]:
    """``line:column`` of the entry at path ``at`` in a composed YAML document (the deepest one found)."""
    import yaml

    mark = None
    for step in at:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == str(step)]
            if not found:
                break
            key, node = found[0]
            mark = key.start_mark
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            mark = node.start_mark
        else:
            break
    return f"{mark.line + 1}:{mark.column + 1}" if mark is not None else None


def parse(spec: Any, where: str = "sweep") -> Sweep:
    if not isinstance(spec, dict):
        raise SweepError(f"{where}: must be a mapping with `name` and `grid` or `random`")
    unknown = set(spec) - {"name", "dataset", "grid", "random"}
    if unknown:
        raise SweepError(
            f"{where}: unknown keys {sorted(unknown)}; allowed: name, dataset, grid, random", (sorted(unknown)[0],)
        )
    dataset = _dataset(spec.get("dataset", "iris"), where)
    if ("grid" in spec) == ("random" in spec):
        raise SweepError(f"{where}: give exactly one of `grid` and `random`")
    name = str(spec.get("name") or Path(where).stem)
    trials = _grid(spec["grid"], where) if "grid" in spec else _random(spec["random"], where)
    if not trials:
        raise SweepError(f"{where}: declares no trial")
    if len(trials) > MAX_TRIALS:
        raise SweepError(f"{where}: declares {len(trials)} trials; at most {MAX_TRIALS}")
    canonical = [_validate(trial, f"{where}: trial {trial}") for trial in trials]
    unique = list({trial_key(t): t for t in canonical}.values())
    return Sweep(name, unique, dataset)


def _dataset(value: Any, where: str) -> str:
    """Iris, or a dataset with a definition in ``datasets/``."""
    from iris_assets.datasets.definition import shipped_names

    allowed = ["iris", *shipped_names()]
    if value not in allowed:
        raise SweepError(
            f"{where}: dataset {value!r} is not allowed: expected one of {', '.join(allowed)} "
            "(a dataset is a definition in datasets/)",
            ("dataset",),
        )
    return str(value)


def _spaces(space: Any, section: str, where: str) -> list[tuple[str, dict, tuple]]:
    """(family, its space, its path in the file) for a flat space (the forest's) or a `families` mapping."""
    if not isinstance(space, dict) or FAMILIES_KEY not in space:
        return [(DEFAULT_FAMILY, space, (section,))]
    others = sorted(set(space) - {FAMILIES_KEY, *(("samples", "seed") if section == "random" else ())})
    if others:
        raise SweepError(
            f"{where}: {section} has `{FAMILIES_KEY}`, so its hyperparameters go under their family, not {others}",
            (section, others[0]),
        )
    families = space[FAMILIES_KEY]
    if not isinstance(families, dict) or not families:
        raise SweepError(
            f"{where}: {section}.{FAMILIES_KEY} must map families ({', '.join(FAMILIES)}) to their spaces",
            (section, FAMILIES_KEY),
        )
    unknown = sorted(str(name) for name in families if name not in FAMILIES)
    if unknown:
        raise SweepError(
            f"{where}: no family {unknown}; the families are {list(FAMILIES)}", (section, FAMILIES_KEY, unknown[0])
        )
    return [(name, families[name] or {}, (section, FAMILIES_KEY, name)) for name in families]


def _with_family(family: str, trial: dict[str, Any]) -> dict[str, Any]:
    return trial if family == DEFAULT_FAMILY else {FAMILY: family, **trial}


def _grid(grid: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(grid, dict) or not grid:
        raise SweepError(f"{where}: `grid` must map hyperparameters to lists of values", ("grid",))
    trials = []
    for family, space, at in _spaces(grid, "grid", where):
        if not isinstance(space, dict):
            raise SweepError(f"{where}: grid of {family} must map hyperparameters to lists of values", at)
        _known(family, space, where, at)
        names = sorted(space)
        values = [_choices(name, space[name]) for name in names]
        trials += [
            _with_family(family, dict(zip(names, combination, strict=True)))
            for combination in itertools.product(*values)
        ]
    return trials


def _choices(name: str, value: Any) -> list:
    """A grid entry's values: a list, or one value (layer sizes: a list of lists, or one list)."""
    if _kind(name) is list:
        return value if isinstance(value, list) and value and all(isinstance(v, list) for v in value) else [value]
    return value if isinstance(value, list) else [value]


def _random(spec: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(spec, dict):
        raise SweepError(f"{where}: `random` must be a mapping with samples, seed and ranges", ("random",))
    samples, seed = spec.get("samples"), spec.get("seed", 0)
    if not isinstance(samples, int) or samples < 1:
        raise SweepError(f"{where}: random.samples must be a whole number >= 1, not {samples!r}", ("random", "samples"))
    draw = random.Random(seed)
    trials = []
    for family, space, at in _spaces(spec, "random", where):
        if not isinstance(space, dict):
            raise SweepError(f"{where}: random of {family} must map hyperparameters to ranges", at)
        flat = at == ("random",)  # a flat space sits beside samples and seed
        ranges = {k: v for k, v in space.items() if not (flat and k in ("samples", "seed"))}
        _known(family, ranges, where, at)
        for _ in range(samples):
            trial = {name: _draw(draw, name, ranges[name], where, at) for name in sorted(ranges)}
            trials.append(_with_family(family, trial))
    return trials


def _draw(draw: random.Random, name: str, bounds: Any, where: str, at: tuple) -> Any:
    at = (*at, name)
    if isinstance(bounds, dict) and set(bounds) == {"choice"}:
        if not isinstance(bounds["choice"], list) or not bounds["choice"]:
            raise SweepError(f"{where}: random.{name}.choice must be a list of values", at)
        return draw.choice(bounds["choice"])
    kind = _kind(name)
    if not isinstance(bounds, dict) or not {"low", "high"} <= set(bounds) <= {"low", "high", "log"}:
        raise SweepError(f"{where}: random.{name} must be {{low: ..., high: ...}} (or {{choice: [...]}})", at)
    low, high, log = bounds["low"], bounds["high"], bool(bounds.get("log", False))
    if kind is int:
        if not (isinstance(low, int) and isinstance(high, int) and low <= high):
            raise SweepError(f"{where}: random.{name}: low and high must be whole numbers, low <= high", at)
        if log:
            raise SweepError(f"{where}: random.{name}: log applies to real numbers", at)
        return draw.randint(low, high)
    if kind is not float:
        raise SweepError(f"{where}: random.{name} takes {{choice: [...]}}, not a range", at)
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numbers or low > high or (log and low <= 0):
        raise SweepError(f"{where}: random.{name}: low and high must be numbers, low <= high (and > 0 with log)", at)
    value = math.exp(draw.uniform(math.log(low), math.log(high))) if log else draw.uniform(low, high)
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _known(family: str, params: dict, where: str, at: tuple) -> None:
    tunable = FAMILIES[family].hyperparameters
    unknown = sorted(str(name) for name in params if name not in tunable)
    if not unknown:
        return
    if family == DEFAULT_FAMILY and at[-1] in ("grid", "random"):  # a flat space
        raise SweepError(
            f"{where}: cannot tune {unknown}; the model's hyperparameters are {list(TUNABLE)} (a flat space is a "
            f"random forest's; other families go under `{FAMILIES_KEY}`: {', '.join(FAMILIES)})",
            (*at, unknown[0]),
        )
    raise SweepError(
        f"{where}: {family} cannot tune {unknown}; its hyperparameters are {list(tunable)}", (*at, unknown[0])
    )


def _validate(trial: dict[str, Any], where: str) -> dict[str, Any]:
    """The trial as the model's config reads it (``C: 1`` is ``1.0``), or a SweepError naming what is wrong."""
    from pydantic import ValidationError

    from iris_assets.training.assets import ModelConfig

    try:
        config = ModelConfig(**trial)
    except ValidationError as error:
        detail = "; ".join(
            f"{e['loc'][0]}={e.get('input')!r}: {e['msg']}" if e["loc"] else e["msg"].removeprefix("Value error, ")
            for e in error.errors()
        )
        raise SweepError(f"{where}: {detail}") from None
    return {name: trial[name] if name == FAMILY else getattr(config, name) for name in trial}


def label(params: dict[str, Any], optional: Optional[list[str]] = None) -> str:
    """A short human label of a trial's parameters (``n_estimators 25, max_depth 3``)."""
    names = optional or sorted(params)
    return ", ".join(f"{name} {_text(params[name])}" for name in names if name in params)
