"""A dataset definition: the few lines (``datasets/<name>.yaml``) that give a table its own tracked pipeline.

    name: wine                     # lower-case letters, digits, _; names the assets, job and files
    source: sklearn:wine           # scikit-learn's bundled iris, wine or digits; or a CSV path
    label: cultivar                # the label column (bundled sets: the name given to their target)
    features: [alcohol, ...]       # optional: the feature columns (default: every other column)
    classes: [class_0, ...]        # optional: the classes, in this order (default: sorted)
    experiment: wine-classification    # optional (default: <name>-classification)
    registered_model: wine-classifier  # optional (default: <name>-classifier)
    tuning_experiment: wine-hyperparameter-tuning  # optional: its sweeps (default: <name>-hyperparameter-tuning)

A CSV path is relative to the definition's folder. What is checked of the table
itself (before any training) is in ``datasets/table.py``; docs/datasets.md says both.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from iris_assets import settings

DATASETS_DIR = settings.PROJECT_ROOT / "datasets"  # the definitions this project ships (wine, digits)
BUNDLED_PREFIX = "sklearn:"
BUNDLED = ("iris", "wine", "digits")  # scikit-learn's copies: no network
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
# Iris is the project's own pipeline (assets raw_data ... registered_model, job iris_pipeline); a
# definition of that name would share its tags and registry without its history.
RESERVED_NAMES = ("iris", "all_pipelines")  # Iris's, and the location holding every pipeline
KEYS = ("name", "source", "label", "features", "classes", "experiment", "registered_model", "tuning_experiment")
REQUIRED_KEYS = ("name", "source", "label")


class DatasetDefinitionError(ValueError):
    """A definition file that cannot give a pipeline; the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class DatasetDefinition:
    name: str
    source: str  # "sklearn:<set>" or an absolute CSV path
    label: str
    features: Optional[tuple[str, ...]] = None
    classes: Optional[tuple[str, ...]] = None
    experiment: str = ""
    registered_model: str = ""
    tuning_experiment: str = ""
    path: Optional[Path] = field(default=None, compare=False)  # the file it was read from

    @property
    def bundled(self) -> Optional[str]:
        return self.source.removeprefix(BUNDLED_PREFIX) if self.source.startswith(BUNDLED_PREFIX) else None

    @property
    def job_name(self) -> str:
        return f"{self.name}_pipeline"


def definition_path(name: str) -> Path:
    return DATASETS_DIR / f"{name}.yaml"


def shipped_names() -> list[str]:
    """The datasets this project ships a definition of (each its own code location)."""
    return sorted(path.stem for path in DATASETS_DIR.glob("*.yaml"))


def load_definition(path: "str | Path") -> DatasetDefinition:
    """Read and check a definition file; DatasetDefinitionError in one line naming the problem."""
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetDefinitionError(f"{path}: no such dataset definition") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        detail = str(error).strip().splitlines()[0][:200]
        raise DatasetDefinitionError(f"{path}: cannot be read as a YAML definition ({detail})") from None
    if not isinstance(document, dict):
        raise DatasetDefinitionError(f"{path}: must be a mapping of {list(KEYS)}, not {type(document).__name__}")
    return definition_from_mapping(document, path)


def definition_from_mapping(document: dict[str, Any], path: Path) -> DatasetDefinition:
    unknown = sorted(str(key) for key in document if key not in KEYS)
    if unknown:
        raise DatasetDefinitionError(f"{path}: unknown key(s) {unknown}; allowed: {list(KEYS)}")
    missing = [key for key in REQUIRED_KEYS if not document.get(key)]
    if missing:
        raise DatasetDefinitionError(f"{path}: {missing[0]} is missing; required: {list(REQUIRED_KEYS)}")
    name = _text(document, "name", path)
    if not re.fullmatch(NAME_PATTERN, name):
        raise DatasetDefinitionError(
            f"{path}: name {name!r} is not allowed: lower-case letters, digits and _, starting with a letter, "
            "at most 40 characters"
        )
    if name in RESERVED_NAMES:
        owner = "the project's own Iris pipeline" if name == "iris" else "the location of every pipeline"
        raise DatasetDefinitionError(
            f"{path}: name {name!r} is {owner}; give your dataset another name "
            f"(source: {BUNDLED_PREFIX}iris is allowed)"
        )
    label = _text(document, "label", path)
    source = _text(document, "source", path)
    if source.startswith(BUNDLED_PREFIX):
        if source.removeprefix(BUNDLED_PREFIX) not in BUNDLED:
            raise DatasetDefinitionError(
                f"{path}: source {source!r} is not a bundled set; allowed: "
                f"{[BUNDLED_PREFIX + b for b in BUNDLED]} or a CSV path"
            )
    else:
        csv = (path.parent / source).resolve()
        if not csv.is_file():
            raise DatasetDefinitionError(f"{path}: source {source!r} names no file ({csv} does not exist)")
        source = str(csv)
    features = _names(document, "features", path)
    classes = _names(document, "classes", path)
    if features is not None and label in features:
        raise DatasetDefinitionError(f"{path}: label {label!r} is also among features; a column is one or the other")
    return DatasetDefinition(
        name=name,
        source=source,
        label=label,
        features=features,
        classes=classes,
        experiment=_text(document, "experiment", path, default=f"{name}-classification"),
        registered_model=_text(document, "registered_model", path, default=f"{name}-classifier"),
        tuning_experiment=_text(document, "tuning_experiment", path, default=f"{name}-hyperparameter-tuning"),
        path=path,
    )


def _text(document: dict[str, Any], key: str, path: Path, default: str = "") -> str:
    value = document.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        raise DatasetDefinitionError(f"{path}: {key} = {value!r} is not allowed: expected non-empty text")
    return value.strip()


def _names(document: dict[str, Any], key: str, path: Path) -> Optional[tuple[str, ...]]:
    value = document.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise DatasetDefinitionError(f"{path}: {key} must be a non-empty list of names, not {value!r}"[:300])
    names = tuple(str(item) for item in value)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetDefinitionError(f"{path}: {key} names {repeated} more than once")
    return names
