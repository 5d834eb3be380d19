"""Promotion: `champion` points at the best version, `challenger` labels one that is not.

Aliases, not the deprecated stages: ``champion`` is the version with the best test
accuracy, then F1, then the newest on a tie (so a new version takes ``champion``
when it is at least as good); a version that is not promoted gets ``challenger``
and a tag ``not_promoted_reason``.

Promotion is safe when runs finish together: ``champion`` is recomputed from all
versions and re-checked after every write, so whichever promotion writes last, the
alias ends on the best version, and every version stays registered.
"""

from typing import Optional

CHAMPION, CHALLENGER = "champion", "challenger"
NOT_PROMOTED_TAG = "not_promoted_reason"
SUPERSEDED_TAG = "superseded_by"  # on a former champion


def _score(version) -> tuple[float, float, int]:
    tags = version.tags
    return (float(tags.get("accuracy", "-1")), float(tags.get("f1_score", "-1")), int(version.version))


def promote(client, name: str, mine, attempts: int = 10) -> str:
    """Point ``champion`` at the best version of ``name``; label ``mine`` if it is not it.

    ``mine`` is the ModelVersion just registered. Returns the champion's version number.
    """
    version = str(mine.version)
    for _ in range(attempts):
        best = max(_versions(client, name, mine), key=_score)
        current = _alias_version(client, name, CHAMPION)
        if current != str(best.version):
            client.set_registered_model_alias(name, CHAMPION, str(best.version))
            if current is not None:
                client.set_model_version_tag(name, current, SUPERSEDED_TAG, f"v{best.version}")
        # Re-read after writing: a concurrent promotion may have registered a better
        # version, or overwritten the alias with a stale choice. Stop once stable.
        fresh = max(_versions(client, name, mine), key=_score)
        if str(fresh.version) == str(best.version) and _alias_version(client, name, CHAMPION) == str(best.version):
            break
    else:
        raise RuntimeError(f"champion alias of {name!r} did not settle after {attempts} attempts")
    if version != str(best.version):
        accuracy, f1, _ = _score(mine)
        best_accuracy, best_f1, _ = _score(best)
        client.set_registered_model_alias(name, CHALLENGER, version)
        client.set_model_version_tag(
            name,
            version,
            NOT_PROMOTED_TAG,
            f"accuracy {accuracy:.4f} / f1 {f1:.4f} below champion v{best.version} "
            f"(accuracy {best_accuracy:.4f} / f1 {best_f1:.4f})",
        )
    return str(best.version)


def _versions(client, name: str, mine) -> list:
    """Every version of ``name``, ``mine`` included even if a search does not show it yet."""
    found = {str(v.version): v for v in client.search_model_versions(f"name = '{name}'")}
    found.setdefault(str(mine.version), mine)
    return list(found.values())


def _alias_version(client, name: str, alias: str) -> Optional[str]:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
