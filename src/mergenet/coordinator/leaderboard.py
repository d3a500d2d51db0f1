"""Read side of the live page: score points, version marks, the contributor leaderboard and the
per-task comparison, as plain dicts.

Kept apart from ``queries`` (the API's read side) so the page can grow without touching the
routes other clients depend on. Every function takes a session and only reads; ids are the
database's autoincrement ids, so a live client can ask for "everything after the last id I saw"
and never miss or repeat a row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.coordinator.state import CONFIRMATION, CONTRIBUTION, Kind, current_version
from mergenet.protocol.results import PRIMARY_ACCURACY

DHARMA_METRIC = PRIMARY_ACCURACY
"""The headline accuracy: each choice's log-likelihood (lm-eval's method). The letter accuracy
stays at chance for models this small (README, "Evaluation"), so it would show no progress."""


def _iso(t: Any) -> str | None:
    return t.isoformat() if t is not None else None


def _macro(result: dict[str, Any] | None, attr: str = DHARMA_METRIC) -> float | None:
    """Macro of ``attr`` from an ``EvalResult.to_dict()``; None when absent (old rows)."""
    if not result:
        return None
    macro = result.get("macro") or {}
    if attr in macro and macro[attr] is not None:
        return float(macro[attr])
    tasks = result.get("tasks") or {}
    vals = [float(t[attr]) for t in tasks.values() if attr in t]
    return sum(vals) / len(vals) if vals else None


def _point(e: m.Evaluation, c: m.Candidate) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": _iso(e.created_at),
        "purpose": e.purpose,
        "candidate": c.id,
        "strategy": c.strategy,
        "kind": c.kind,
        "score": e.score,
        "baseline": e.baseline,
        "gain": e.gain,
        "dharma": _macro(e.result),
        "parent_dharma": _macro(e.parent_result),
    }


def _evaluations() -> Select[m.Evaluation, m.Candidate]:
    return select(m.Evaluation, m.Candidate).join(
        m.Candidate, m.Candidate.id == m.Evaluation.candidate_id
    )


def score_points(s: Session, after_id: int = 0, limit: int = 500) -> list[dict[str, Any]]:
    """Finished evaluations with id > ``after_id``, oldest first (at most ``limit``; the next
    call continues): S, ΔS and macro Dharma accuracy."""
    q = _evaluations().where(m.Evaluation.id > after_id).order_by(m.Evaluation.id).limit(limit)
    return [_point(e, c) for e, c in s.execute(q).all()]


def recent_points(s: Session, limit: int = 5000) -> list[dict[str, Any]]:
    """The newest ``limit`` evaluations, oldest first: what a page draws when it opens (a
    coordinator that has run for weeks must not send its whole history)."""
    q = _evaluations().order_by(m.Evaluation.id.desc()).limit(limit)
    return [_point(e, c) for e, c in reversed(s.execute(q).all())]


def _confirmation(s: Session, candidate_id: int | None) -> m.Evaluation | None:
    if candidate_id is None:
        return None
    return s.scalar(
        select(m.Evaluation)
        .where(m.Evaluation.candidate_id == candidate_id, m.Evaluation.purpose == CONFIRMATION)
        .order_by(m.Evaluation.id.desc())
        .limit(1)
    )


def version_marks(s: Session, after_id: int = 0) -> list[dict[str, Any]]:
    """Accepted versions with id > ``after_id``: where to mark them and what to show on hover.

    The base (no recipe) is included so the chart can start from it; ``evaluation`` is the id
    of the confirmation that accepted the version (the point the mark sits on).
    """
    out = []
    for v in s.scalars(select(m.Version).where(m.Version.id > after_id).order_by(m.Version.id)):
        recipe = v.recipe or {}
        conf = _confirmation(s, v.candidate_id)
        shas = [c.get("sha256") for c in recipe.get("contributions") or []]
        owners = dict(
            s.execute(
                select(m.Contribution.sha256, m.Contribution.address).where(
                    m.Contribution.sha256.in_(shas)
                )
            ).all()
        )
        out.append(
            {
                "id": v.id,
                "hash": v.hash,
                "parent_hash": v.parent_hash,
                "at": _iso(v.created_at),
                "score": v.score,
                "gain": v.gain,
                "dharma": _macro(conf.result) if conf is not None else None,
                "evaluation": conf.id if conf is not None else None,
                "strategy": recipe.get("strategy"),
                "params": recipe.get("params") or {},
                "contributions": [
                    {
                        "sha256": c.get("sha256"),
                        "weight": c.get("weight", 1.0),
                        "address": owners.get(c.get("sha256")),
                    }
                    for c in recipe.get("contributions") or []
                ],
                "is_base": v.recipe is None,
            }
        )
    return out


def latest_ids(s: Session) -> dict[str, int]:
    """The newest evaluation and version ids: where a live stream starts by default."""
    return {
        "evaluation": int(s.scalar(select(func.max(m.Evaluation.id))) or 0),
        "version": int(s.scalar(select(func.max(m.Version.id))) or 0),
    }


def _max(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _rewards(s: Session, address: str, contracts: Any) -> dict[str, int]:
    """Accrued and claimed base units; zeros when the ledger cannot answer (no chain, bad row)."""
    try:
        from mergenet.rewards.service import rewards_for_address

        r = rewards_for_address(s, address, contracts)
        return {"accrued": int(r.accrued), "claimed": int(r.claimed or 0)}
    except Exception:  # a leaderboard row must never take the page down
        return {"accrued": 0, "claimed": 0}


def _impacts(s: Session) -> dict[str, float]:
    """sha256 → impact (:mod:`mergenet.coordinator.impact`) from its newest scoring evaluation."""
    from mergenet.coordinator.impact import impact

    rows = s.execute(
        select(m.Candidate.contribution_sha, m.Evaluation.result, m.Evaluation.parent_result)
        .join(m.Evaluation, m.Evaluation.candidate_id == m.Candidate.id)
        .where(m.Candidate.kind == Kind.CONTRIBUTION, m.Evaluation.purpose == CONTRIBUTION)
        .order_by(m.Evaluation.id)
    ).all()
    norms = dict(s.execute(select(m.Contribution.sha256, m.Contribution.relative_norm)).all())
    out: dict[str, float] = {}
    for sha, result, parent in rows:
        effect = impact(parent, result, norms.get(sha))
        if effect is not None and effect["impact"] is not None:
            out[str(sha)] = float(effect["impact"])
    return out


def leaderboard(s: Session, contracts: Any = None) -> list[dict[str, Any]]:
    """One row per contributor: contributions, how many merged into a version, best S, best G
    (vs the version each was scored on: below zero for most specialists, which forget other
    tasks), best impact, rewards accrued and claimed (decimal strings: base units exceed JS's
    2**53). Most merged first, then best impact."""
    from mergenet.rewards.units import format_tokens

    impacts = _impacts(s)

    merged: dict[str, int] = {}
    for (recipe,) in s.execute(select(m.Version.recipe).where(m.Version.recipe.is_not(None))):
        for c in (recipe or {}).get("contributions") or []:
            merged[c.get("sha256")] = merged.get(c.get("sha256"), 0) + 1
    rows: dict[str, dict[str, Any]] = {}
    for c in s.scalars(select(m.Contribution).order_by(m.Contribution.id)):
        r = rows.setdefault(
            c.address,
            {
                "address": c.address,
                "contributions": 0,
                "scored": 0,
                "merged": 0,
                "best_score": None,
                "best_gain": None,
                "best_impact": None,
            },
        )
        r["contributions"] += 1
        r["merged"] += 1 if merged.get(c.sha256) else 0
        if c.score is not None:
            r["scored"] += 1
            r["best_score"] = _max(r["best_score"], c.score)
            r["best_gain"] = _max(r["best_gain"], c.gain)
        r["best_impact"] = _max(r["best_impact"], impacts.get(c.sha256))
    for r in rows.values():
        amounts = _rewards(s, r["address"], contracts)
        for key, units in amounts.items():
            r[key] = {"base_units": str(units), "tokens": format_tokens(units)}
    return sorted(
        rows.values(),
        key=lambda r: (
            -int(r["accrued"]["base_units"]),
            -r["merged"],
            -(r["best_impact"] if r["best_impact"] is not None else float("-inf")),
            -r["contributions"],
            r["address"],
        ),
    )


def task_comparison(s: Session, attr: str = DHARMA_METRIC) -> dict[str, Any]:
    """Per-task ``attr`` of the current version against the base.

    From the live feed's accumulated fresh rows (:func:`mergenet.coordinator.feed.task_bars`)
    once it measured both (the page draws those, with their bands, from ``/api/feed``).
    Before that, the current version's numbers come from the confirmation that accepted it and
    the base's from the newest evaluation that scored something against the base (its
    ``parent_result``): one 16-row sample each, which once showed predecessor 75 % → 37 % and
    the next sample otherwise. Empty tasks when nothing was measured yet.
    """
    from mergenet.coordinator.feed import task_bars

    bars = task_bars(s)
    if (
        attr == DHARMA_METRIC
        and bars["tasks"]
        and bars.get("base_rows")
        and bars.get("current_rows")
    ):
        return bars | {
            "tasks": {
                name: {k: (v[k]["acc"] if v[k] else None) for k in ("base", "current")}
                for name, v in bars["tasks"].items()
            }
        }
    base = s.scalar(select(m.Version).order_by(m.Version.id).limit(1))
    cur = current_version(s)
    out: dict[str, Any] = {
        "metric": attr,
        "base": base.hash if base else None,
        "current": cur.hash if cur else None,
        "tasks": {},
    }
    if base is None:
        return out
    base_eval = s.scalar(
        select(m.Evaluation)
        .join(m.Candidate, m.Candidate.id == m.Evaluation.candidate_id)
        .where(m.Candidate.parent_hash == base.hash)
        .order_by(m.Evaluation.id.desc())
        .limit(1)
    )
    base_tasks = (base_eval.parent_result or {}).get("tasks", {}) if base_eval else {}
    cur_eval = _confirmation(s, cur.candidate_id) if cur is not None else None
    cur_tasks = (cur_eval.result or {}).get("tasks", {}) if cur_eval else base_tasks
    for name in sorted(set(base_tasks) | set(cur_tasks)):
        b, c = base_tasks.get(name, {}), cur_tasks.get(name, {})
        out["tasks"][name] = {"base": b.get(attr), "current": c.get(attr)}
    return out
