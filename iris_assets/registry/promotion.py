"""Promotion: a new version takes `champion` only by beating it on the same data.

Aliases, not the deprecated stages. A registered version (the candidate) and the
current champion are both scored on the candidate run's own evaluation split, the
rows the candidate never trained on; the champion's numbers are logged in the
candidate's run. The candidate takes ``champion`` when it is eligible and wins
under the ``PromotionRule``; otherwise it gets ``challenger`` and the tag
``not_promoted_reason``. Every decision is recorded on the version (tags and
description) and returned for the asset's metadata.

Promotion is serialised: two candidates deciding at once could each beat the same
old champion and the last write would win unchecked. Inside one Dagster instance
the ``registered_model`` asset runs in the pool ``iris_registry`` (limit 1, see
``deploy/dagster.yaml``); on the embedded sqlite store a file lock also guards
``promote`` itself, so even runs of different instances on one host take turns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from iris_assets.data.schema import SPECIES
from iris_assets.evaluation.scoring import METRICS, Metric, scores
from iris_assets.tracking.store import sqlite_registry_lock

CHAMPION, CHALLENGER = "champion", "challenger"
NOT_PROMOTED_TAG = "not_promoted_reason"
SUPERSEDED_TAG = "superseded_by"  # on a former champion
PROMOTION_TAG = "promotion"  # "promoted" or "not promoted"
COMPARED_WITH_TAG = "compared_with"  # the champion version the decision was made against


@dataclass(frozen=True)
class PromotionRule:
    """When a candidate replaces the champion; see ``decide``."""

    metric: Metric = "accuracy"
    tie_breaker: Metric = "f1_score"
    min_improvement: float = 0.0  # the margin by which ``metric`` must beat the champion's
    min_evaluation_rows: int = 30
    # The dataset's classes, which a candidate must predict and its evaluation split hold (Iris's species by default).
    classes: tuple[str, ...] = tuple(SPECIES)

    def __str__(self) -> str:
        margin = f" + {self.min_improvement}" if self.min_improvement else ""
        return (
            f"higher {self.metric} than the champion's{margin} on the candidate's evaluation split "
            f"(equal: higher {self.tie_breaker}; fully equal: the champion stays); at least "
            f"{self.min_evaluation_rows} evaluation rows and all of {list(self.classes)}"
        )


@dataclass(frozen=True)
class Evaluation:
    """The rows both models are scored on: the candidate run's held-out split."""

    X: Any  # pandas DataFrame of the four measurements
    y: Any  # species names
    digest: str

    @property
    def rows(self) -> int:
        return len(self.X)


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    version: str
    champion_before: Optional[str]  # the version compared with
    champion_after: str
    candidate_scores: dict[str, float]
    champion_scores: Optional[dict[str, float]]
    evaluation_rows: int
    evaluation_digest: str
    rule: PromotionRule = field(default_factory=PromotionRule)
    family: str = ""  # the candidate's model family

    def summary(self) -> str:
        """The decision in one line: the version's description, the asset's metadata."""
        verdict = "promoted to champion" if self.promoted else "not promoted"
        return f"v{self.version} {verdict}: {self.reason}" + (f"; family {self.family}" if self.family else "")


def eligibility_problem(rule: PromotionRule, classes: Sequence[Any], evaluation: Evaluation) -> Optional[str]:
    """Why a candidate may not be promoted whatever it scores, or None."""
    missing = [s for s in rule.classes if s not in set(map(str, classes))]
    if missing:
        return f"the model does not predict {missing} (it knows {sorted(map(str, classes))})"
    if evaluation.rows < rule.min_evaluation_rows:
        return f"evaluated on {evaluation.rows} rows, fewer than min_evaluation_rows={rule.min_evaluation_rows}"
    absent = [s for s in rule.classes if s not in set(evaluation.y)]
    if absent:
        return f"the evaluation split has no {absent} rows"
    return None


def decide(rule: PromotionRule, candidate: dict[str, float], champion: dict[str, float]) -> tuple[bool, str]:
    """Whether the candidate beats the champion on the same data under ``rule``, and why."""
    mine, theirs = candidate[rule.metric], champion[rule.metric]
    shown = f"{rule.metric} {mine:.4f} vs champion {theirs:.4f}"
    if mine > theirs + rule.min_improvement:
        return True, shown
    if rule.min_improvement == 0 and mine == theirs:
        tie_mine, tie_theirs = candidate[rule.tie_breaker], champion[rule.tie_breaker]
        shown += f", {rule.tie_breaker} {tie_mine:.4f} vs {tie_theirs:.4f}"
        return tie_mine > tie_theirs, shown + ("" if tie_mine > tie_theirs else " (a tie keeps the champion)")
    needed = f" + {rule.min_improvement}" if rule.min_improvement else ""
    return False, f"{shown}{needed}"


def promote(
    client: Any,
    tracking_uri: str,
    name: str,
    version: str,
    *,
    classes: Sequence[Any],
    candidate_scores: dict[str, float],
    evaluation: Evaluation,
    load_model: Callable[[str], Any],
    rule: PromotionRule,
    family: str = "",
) -> Decision:
    """Decide, under the registry lock, whether ``version`` of ``name`` replaces the champion; record it.

    Any model family competes under the same rule; the candidate's ``family`` ends the decision's summary."""
    with sqlite_registry_lock(tracking_uri):
        current = _alias_version(client, name, CHAMPION)
        champion_scores = None
        problem = eligibility_problem(rule, classes, evaluation)
        if problem is not None:
            promoted, reason = False, problem
        elif current is None:
            promoted, reason = True, "no champion yet"
        elif current == version:  # decided before, by this step's first execution
            promoted, reason = True, "already the champion"
        else:
            try:
                champion_scores = scores(
                    evaluation.y, species_names(load_model(f"models:/{name}/{current}"), evaluation.X)
                )
            except Exception as error:  # whatever keeps the champion from being scored keeps it champion
                promoted, reason = False, f"champion v{current} could not be scored on this data ({error})"
            else:
                promoted, reason = decide(rule, candidate_scores, champion_scores)
                reason = reason.replace("champion", f"champion v{current}", 1) + f" on the same {evaluation.rows} rows"
        decision = Decision(
            promoted=promoted,
            reason=reason,
            version=version,
            champion_before=current,
            champion_after=version if promoted else (current or ""),
            candidate_scores=candidate_scores,
            champion_scores=champion_scores,
            evaluation_rows=evaluation.rows,
            evaluation_digest=evaluation.digest,
            rule=rule,
            family=family,
        )
        _record(client, name, decision)
    return decision


def species_names(model: Any, X: Any) -> list[str]:
    """The model's predictions as species names, whatever its labels.

    Models trained by earlier versions of this project predict the integer
    ``target`` (0, 1, 2), which the data schema defines as the index in SPECIES.
    """
    predicted = list(model.predict(X))
    return [SPECIES[int(p)] if not isinstance(p, str) else p for p in predicted]


def _record(client: Any, name: str, decision: Decision) -> None:
    version = decision.version
    if decision.promoted and decision.champion_before != version:
        client.set_registered_model_alias(name, CHAMPION, version)
        if decision.champion_before is not None:
            client.set_model_version_tag(name, decision.champion_before, SUPERSEDED_TAG, f"v{version}")
    elif not decision.promoted:
        client.set_registered_model_alias(name, CHALLENGER, version)
        client.set_model_version_tag(name, version, NOT_PROMOTED_TAG, decision.reason)
    tags = {
        PROMOTION_TAG: "promoted" if decision.promoted else "not promoted",
        COMPARED_WITH_TAG: f"v{decision.champion_before}" if decision.champion_before else "none",
        "promotion_rule": str(decision.rule),
        "evaluation_rows": decision.evaluation_rows,
        "evaluation_digest": decision.evaluation_digest,
        **{f"candidate.{k}": f"{v:.6f}" for k, v in decision.candidate_scores.items() if k in METRICS},
        **{f"champion.{k}": f"{v:.6f}" for k, v in (decision.champion_scores or {}).items() if k in METRICS},
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    client.update_model_version(name, version, description=decision.summary())


def _alias_version(client: Any, name: str, alias: str) -> Optional[str]:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
