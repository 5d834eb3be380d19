"""The settings module: the one reader of the environment, and the documentation's table of it."""

import re

import pytest

from iris_assets import settings
from iris_harness.environment import REPO_ROOT


def test_the_documented_environment_table_is_the_settings_table():
    page = (REPO_ROOT / "docs" / "configuration.md").read_text()
    table = settings.markdown_table()
    assert table in page, (
        "docs/configuration.md's environment table differs from iris_assets/settings.py: "
        "run .venv/bin/python scripts/settings_table.py"
    )


def test_only_the_settings_module_reads_the_environment():
    """The project reads its environment in one place; the MLflow binding (tracking/), which knows
    nothing of the project, reads MLflow's own variables itself."""
    readers = []
    binding = REPO_ROOT / "iris_assets" / "tracking"
    for path in sorted((REPO_ROOT / "iris_assets").rglob("*.py")):
        if path.name == "settings.py" and path.parent.name == "iris_assets" or binding in path.parents:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.search(r"\bos\.(environ|getenv|putenv)\b", line):
                readers.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert readers == [], "read the environment through iris_assets.settings:\n" + "\n".join(readers)


def test_every_setting_is_documented_once():
    names = [s.name for s in settings.ALL_SETTINGS]
    assert len(names) == len(set(names))
    for setting in settings.ALL_SETTINGS:
        assert setting.meaning and setting.default, setting.name


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("IRIS_SENSOR_INTERVAL_SECONDS", "soon", "a whole number"),
        ("IRIS_SENSOR_INTERVAL_SECONDS", "0", "a whole number >= 1"),
        ("IRIS_MAX_CSV_BYTES", "1e9", "a whole number"),
    ],
)
def test_a_bad_value_is_named_with_what_is_allowed(monkeypatch, name, value, allowed):
    monkeypatch.setenv(name, value)
    with pytest.raises(settings.SettingError) as error:
        settings.current()
    assert f"${name}={value!r}" in str(error.value) and allowed in str(error.value)


def test_unset_and_empty_mean_the_default(monkeypatch):
    monkeypatch.setenv("IRIS_MLFLOW_EXPERIMENT", "")
    monkeypatch.delenv("IRIS_REGISTERED_MODEL", raising=False)
    current = settings.current()
    assert current.experiment == settings.DEFAULT_EXPERIMENT
    assert current.registered_model == settings.DEFAULT_REGISTERED_MODEL


def test_an_instance_made_by_an_earlier_version_is_brought_up_to_date(tmp_path, monkeypatch):
    """`iris-runs init` (install.sh, iris-ui) rewrites a dagster.yaml an earlier version wrote, never an edited one."""
    import dagster as dg

    from iris_assets.runs.cli import INITIALISED, initialise

    earlier, edited = tmp_path / "earlier", tmp_path / "edited"
    for home, text in (
        (earlier, settings.EARLIER_LOCAL_DAGSTER_YAMLS[0]),
        (edited, "# mine\n" + settings.EARLIER_LOCAL_DAGSTER_YAMLS[0]),
    ):
        home.mkdir()
        (home / "dagster.yaml").write_text(text)
        (home / INITIALISED).touch()  # made and used before
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        initialise()
    assert (earlier / "dagster.yaml").read_text() == settings.LOCAL_DAGSTER_YAML
    assert (edited / "dagster.yaml").read_text() == "# mine\n" + settings.EARLIER_LOCAL_DAGSTER_YAMLS[0]
    with dg.DagsterInstance.from_config(str(earlier)) as instance:
        assert instance.run_coordinator.dequeue_interval_seconds == 1  # type: ignore[attr-defined]
