"""Read side of the contributor page (``/contributors/{address}``, ``/api/contributors/…``):
one contributor's submissions, their scores and impact, which versions merged them at what
weight, the rewards, and — where a contribution earned nothing — one line saying why.

Why a reason line: a contributor who sees "0 tokens" cannot tell a rejected delta from one that
is still waiting. The reasons follow the contribution's path through the loop:

* ``received`` → "pending scoring";
* ``failed`` → "failed: <the scoring evaluation's error>";
* scored, not in the merge pool → "not admitted to the pool: no task's answer loss fell by 2%"
  (the loop's ``pool_min_task_gain``);
* in the pool, in no version yet → "in the merge pool, not merged into a version yet";
* merged, no reward → the leave-one-out marginal where it was measured
  (``Contribution.metrics["attribution"]``, :mod:`mergenet.coordinator.attribution`): "merged,
  marginal gain +0.0012 vs the version without it, below the noise margin"; "merged, marginal
  gain being measured" while it is pending; else "merged, marginal gain below noise".

Gains are labelled with what they are relative to: a contribution's ``gain`` is G of
current + δ (weight 1) against the version it was scored on ("vs parent version"); a version's
is G against its parent. Amounts are exact base-unit strings plus the exact token string; the
page rounds them for display. Everything user-controlled (addresses, errors) is returned as
data for the page to set as text, never as HTML.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mergenet.coordinator import impact as impact_mod
from mergenet.coordinator import models as m
from mergenet.coordinator.status import ContributionStatus, Kind, Purpose
from mergenet.errors import InvalidInput, NotFound

ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _iso(t: Any) -> str | None:
    return t.isoformat() if t is not None else None


def amount(units: int | str | None) -> dict[str, str] | None:
    """Base units as the exact decimal string and the exact token string."""
    from mergenet.rewards.units import format_tokens

    if units is None:
        return None
    return {"base_units": str(int(units)), "tokens": format_tokens(int(units))}


def checked_address(address: str) -> str:
    """The address as stored (checksummed), or 422 with what is wrong."""
    if not isinstance(address, str) or not ADDRESS.fullmatch(address):
        raise InvalidInput(
            f"{address[:60]!r} is not an Ethereum address (0x followed by 40 hex digits)"
        )
    from eth_utils import to_checksum_address

    return str(to_checksum_address(address.lower()))


def merged_in(s: Session) -> dict[str, list[dict[str, Any]]]:
    """sha256 → the versions whose recipe merged it, with weight and strategy (oldest first)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for v in s.scalars(
        select(m.Version).where(m.Version.recipe.is_not(None)).order_by(m.Version.id)
    ):
        recipe = v.recipe or {}
        for c in recipe.get("contributions") or []:
            out.setdefault(str(c.get("sha256")), []).append(
                {
                    "hash": v.hash,
                    "at": _iso(v.created_at),
                    "weight": float(c.get("weight", 1.0)),
                    "strategy": recipe.get("strategy"),
                    "gain": v.gain,
                }
            )
    return out


def _scorings(s: Session, shas: list[str]) -> dict[str, tuple[m.Evaluation | None, m.Candidate]]:
    """sha256 → its newest scoring (evaluation or None, candidate), for errors and impact."""
    rows = s.execute(
        select(m.Candidate, m.Evaluation)
        .outerjoin(
            m.Evaluation,
            (m.Evaluation.candidate_id == m.Candidate.id)
            & (m.Evaluation.purpose == Purpose.CONTRIBUTION),
        )
        .where(m.Candidate.kind == Kind.CONTRIBUTION, m.Candidate.contribution_sha.in_(shas))
        .order_by(m.Candidate.id)
    ).all()
    return {str(c.contribution_sha): (e, c) for c, e in rows}


def _attribution_reason(c: m.Contribution) -> str:
    entries = [e for e in (c.metrics or {}).get("attribution") or [] if isinstance(e, dict)]
    measured = [e for e in entries if isinstance(e.get("marginal"), int | float)]
    if measured:
        best = max(float(e["marginal"]) for e in measured)
        return (
            f"merged, marginal gain {best:+.4f} vs the version without it, below the noise margin"
        )
    if not entries:
        return "merged, marginal gain below noise (or not yet measured)"
    return "merged, marginal gain below noise"


def reason(
    c: m.Contribution,
    versions: list[dict[str, Any]],
    reward: str | int | None,
    error: str | None,
    min_task_gain: float,
) -> str | None:
    """Why ``c`` earned nothing (None when it earned something)."""
    if reward is not None and int(reward) > 0:
        return None
    if c.status == ContributionStatus.RECEIVED:
        return "pending scoring"
    if c.status == ContributionStatus.FAILED:
        return f"failed: {error or 'its scoring evaluation failed'}"[:300]
    if c.status != ContributionStatus.SCORED:
        return f"{c.status}" + (f": {error}" if error else "")
    if not c.in_pool:
        return f"not admitted to the pool: no task's answer loss fell by {min_task_gain:.0%}"
    if not versions:
        return "in the merge pool, not merged into a version yet"
    return _attribution_reason(c)


def _accruals(s: Session, address: str) -> dict[str, int]:
    """sha256 → base units the ledger credited to it: entries named by the sha itself (a
    scoring reward) or ``marginal:<version>:<sha>`` (:mod:`mergenet.coordinator.attribution`)."""
    from mergenet.rewards.models import RewardAccrual

    out: dict[str, int] = {}
    rows = s.execute(
        select(RewardAccrual.contribution_id, RewardAccrual.amount).where(
            RewardAccrual.account == address
        )
    ).all()
    for cid, units in rows:
        sha = str(cid).rsplit(":", 1)[-1]
        out[sha] = out.get(sha, 0) + int(units)
    return out


def _row(
    c: m.Contribution,
    scoring: tuple[m.Evaluation | None, m.Candidate] | None,
    versions: list[dict[str, Any]],
    reward: str | int | None,
    min_task_gain: float,
) -> dict[str, Any]:
    e, cand = scoring if scoring is not None else (None, None)
    effect = (
        impact_mod.impact(e.parent_result, e.result, c.relative_norm, min_task_gain)
        if e is not None
        else None
    )
    attribution = (c.metrics or {}).get("attribution") or []
    return {
        "sha256": c.sha256,
        "created_at": _iso(c.created_at),
        "status": c.status,
        "parent_hash": c.parent_hash,
        "scored_on": c.scored_on,
        "score": c.score,
        "gain": c.gain,
        "gain_relative_to": "parent version (current + δ at weight 1 vs the version scored on)",
        "in_pool": c.in_pool,
        "relative_norm": c.relative_norm,
        "impact": effect,
        "versions": versions,
        "attribution": [a for a in attribution if isinstance(a, dict)],
        "reward": amount(reward),
        "reason": reason(
            c, versions, reward, cand.error if cand is not None else None, min_task_gain
        ),
    }


def _rewards(s: Session, address: str, contracts: Any) -> dict[str, Any]:
    """Accrued, published, claimed; zeros (claimed None) when the ledger cannot answer."""
    try:
        from mergenet.rewards.service import rewards_for_address

        r = rewards_for_address(s, address, contracts)
        accrued, published, claimed = int(r.accrued), int(r.published), r.claimed
    except Exception:  # the page must not fail because the chain is away
        accrued, published, claimed = 0, 0, None
    return {
        "accrued": amount(accrued),
        "published": amount(published),
        "claimed": amount(claimed),
    }


def contributor(
    s: Session, address: str, contracts: Any = None, min_task_gain: float = 0.02
) -> dict[str, Any]:
    """``GET /api/contributors/{address}``: 422 for a malformed address, 404 for an unknown."""
    addr = checked_address(address)
    found = s.scalar(
        select(m.Contributor.address).where(func.lower(m.Contributor.address) == addr.lower())
    )
    if found is None:
        raise NotFound(f"no contributions from {addr}")
    rows = list(
        s.scalars(
            select(m.Contribution)
            .where(m.Contribution.address == found)
            .order_by(m.Contribution.id)
        )
    )
    merged = merged_in(s)
    scorings = _scorings(s, [c.sha256 for c in rows])
    ledger = _accruals(s, found)  # the ledger answers where the column was never written
    out = [
        _row(
            c,
            scorings.get(c.sha256),
            merged.get(c.sha256, []),
            c.reward if c.reward is not None else ledger.get(c.sha256),
            min_task_gain,
        )
        for c in rows
    ]
    return {
        "address": found,
        "contributions": out,
        "merged": sum(1 for r in out if r["versions"]),
        "rewards": _rewards(s, found, contracts),
    }
