"""The run-scoped IO manager: where a partition's value goes, whatever its key holds."""

import pytest
from upath import UPath

from iris_assets.io_manager import RunScopedPickleIOManager


@pytest.mark.parametrize(
    "key, segment",
    [
        ("max_depth=3__n_estimators=10", "max_depth=3__n_estimators=10"),
        ("../../outside", "..%2F..%2Foutside"),
        ("..", "%2E%2E"),
        ("/etc/passwd", "%2Fetc%2Fpasswd"),
        ("100%", "100%25"),
    ],
)
def test_a_partition_key_is_one_segment_under_its_asset(tmp_path, key, segment):
    manager = RunScopedPickleIOManager(base_path=UPath(tmp_path))
    folder = UPath(tmp_path) / "trial_model"
    path = manager.make_safe_partition_path(folder, key)
    assert path.name == segment and path.parent == folder
    assert str(path.resolve()).startswith(str(folder.resolve()) + "/")
