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

The hyperparameters are the ``model`` asset's (``n_estimators``, ``max_depth``,
``random_state``), validated by its config. A trial's key is its parameters in a
canonical form, ``max_depth=3__n_estimators=25``: the same trial always has the same
key, so declaring a sweep again adds only the trials it did not have.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

TUNABLE = ("n_estimators", "max_depth", "random_state")
SEPARATOR = "__"
MAX_TRIALS = 500


class SweepError(ValueError):
    """A sweep file that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Sweep:
    name: str
    trials: list[dict[str, Any]]

    @property
    def keys(self) -> list[str]:
        return [trial_key(trial) for trial in self.trials]


def trial_key(params: dict[str, Any]) -> str:
    return SEPARATOR.join(f"{name}={_text(params[name])}" for name in sorted(params))


def trial_params(key: str) -> dict[str, Any]:
    """The hyperparameters a trial key stands for (validated as the model's config)."""
    params: dict[str, Any] = {}
    for part in key.split(SEPARATOR):
        name, _, value = part.partition("=")
        if name not in TUNABLE or not (value == "none" or value.isdigit()):
            raise SweepError(f"trial {key!r}: {part!r} is not one of {list(TUNABLE)} = a whole number or none")
        params[name] = None if value == "none" else int(value)
    _validate(params, f"trial {key!r}")
    return params


def _text(value: Any) -> str:
    return "none" if value is None else str(value)


def load(path: str | Path) -> Sweep:
    import yaml

    try:
        spec = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise SweepError(f"{path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:  # one line: where, and what (PyYAML's own message draws a caret diagram)
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or "not valid YAML"
        context = getattr(error, "context", None)
        raise SweepError(f"{where}: {problem}" + (f" ({context})" if context else "")) from None
    return parse(spec, str(path))


def parse(spec: Any, where: str = "sweep") -> Sweep:
    if not isinstance(spec, dict):
        raise SweepError(f"{where}: must be a mapping with `name` and `grid` or `random`")
    unknown = set(spec) - {"name", "grid", "random"}
    if unknown:
        raise SweepError(f"{where}: unknown keys {sorted(unknown)}; allowed: name, grid, random")
    if ("grid" in spec) == ("random" in spec):
        raise SweepError(f"{where}: give exactly one of `grid` and `random`")
    name = str(spec.get("name") or Path(where).stem)
    trials = _grid(spec["grid"], where) if "grid" in spec else _random(spec["random"], where)
    if not trials:
        raise SweepError(f"{where}: declares no trial")
    if len(trials) > MAX_TRIALS:
        raise SweepError(f"{where}: declares {len(trials)} trials; at most {MAX_TRIALS}")
    for trial in trials:
        _validate(trial, f"{where}: trial {trial}")
    unique = list({trial_key(t): t for t in trials}.values())
    return Sweep(name, unique)


def _grid(grid: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(grid, dict) or not grid:
        raise SweepError(f"{where}: `grid` must map hyperparameters to lists of values")
    _known(grid, where)
    names = sorted(grid)
    values = [grid[n] if isinstance(grid[n], list) else [grid[n]] for n in names]
    return [dict(zip(names, combination, strict=True)) for combination in itertools.product(*values)]


def _random(spec: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(spec, dict):
        raise SweepError(f"{where}: `random` must be a mapping with samples, seed and ranges")
    samples, seed = spec.get("samples"), spec.get("seed", 0)
    if not isinstance(samples, int) or samples < 1:
        raise SweepError(f"{where}: random.samples must be a whole number >= 1, not {samples!r}")
    ranges = {k: v for k, v in spec.items() if k not in ("samples", "seed")}
    _known(ranges, where)
    draw = random.Random(seed)
    trials = []
    for _ in range(samples):
        trial = {}
        for name in sorted(ranges):
            bounds = ranges[name]
            if not isinstance(bounds, dict) or set(bounds) != {"low", "high"}:
                raise SweepError(f"{where}: random.{name} must be {{low: ..., high: ...}}")
            low, high = bounds["low"], bounds["high"]
            if not (isinstance(low, int) and isinstance(high, int) and low <= high):
                raise SweepError(f"{where}: random.{name}: low and high must be whole numbers, low <= high")
            trial[name] = draw.randint(low, high)
        trials.append(trial)
    return trials


def _known(params: dict, where: str) -> None:
    unknown = sorted(set(params) - set(TUNABLE))
    if unknown:
        raise SweepError(f"{where}: cannot tune {unknown}; the model's hyperparameters are {list(TUNABLE)}")


def _validate(trial: dict[str, Any], where: str) -> None:
    from pydantic import ValidationError

    from iris_assets.training.assets import ModelConfig

    try:
        ModelConfig(**trial)
    except ValidationError as error:
        detail = "; ".join(f"{e['loc'][0]}={e.get('input')!r}: {e['msg']}" for e in error.errors())
        raise SweepError(f"{where}: {detail}") from None


def label(params: dict[str, Any], optional: Optional[list[str]] = None) -> str:
    """A short human label of a trial's parameters (``n_estimators 25, max_depth 3``)."""
    names = optional or sorted(params)
    return ", ".join(f"{name} {_text(params[name])}" for name in names if name in params)
