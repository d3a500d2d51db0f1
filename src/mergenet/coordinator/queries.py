"""Read side of the API: plain dicts from the database, so routes stay one line each.

The dicts are the wire shapes :mod:`mergenet.coordinator.api.schemas` describes; a missing
resource raises :class:`mergenet.errors.NotFound` (the API answers 404 with its message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.coordinator.state import Purpose, current_version, current_weights
from mergenet.errors import NotFound


def _iso(t: Any) -> str | None:
    return t.isoformat() if t is not None else None


def contribution_json(c: m.Contribution) -> dict[str, Any]:
    return {
        "sha256": c.sha256,
        "address": c.address,
        "parent_hash": c.parent_hash,
        "nonce": c.nonce,
        "status": c.status,
        "score": c.score,
        "gain": c.gain,
        "in_pool": c.in_pool,
        "relative_norm": c.relative_norm,
        "size_bytes": c.size_bytes,
        "reward": None if c.reward is None else {"base_units": c.reward},
        "created_at": _iso(c.created_at),
    }


def contribution(s: Session, sha256: str) -> dict[str, Any]:
    c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == sha256.lower()))
    if c is None:
        raise NotFound(f"no contribution with sha256 {sha256}")
    return contribution_json(c) | {"in_versions": versions_using(s, c.sha256)}


def versions_using(s: Session, sha256: str) -> list[str]:
    """Accepted versions whose recipe merged this contribution (what earns a share of gain)."""
    found = []
    for v in s.scalars(select(m.Version).where(m.Version.recipe.is_not(None))):
        if any(x.get("sha256") == sha256 for x in (v.recipe or {}).get("contributions", [])):
            found.append(v.hash)
    return found


def version_json(v: m.Version) -> dict[str, Any]:
    return {
        "hash": v.hash,
        "parent_hash": v.parent_hash,
        "recipe_hash": v.recipe_hash,
        "score": v.score,
        "gain": v.gain,
        "weights_path": v.weights_path,
        "evaluations_at_accept": v.evaluations_at_accept,
        "created_at": _iso(v.created_at),
    }


def versions(s: Session) -> list[dict[str, Any]]:
    return [version_json(v) for v in s.scalars(select(m.Version).order_by(m.Version.id))]


def current(s: Session) -> dict[str, Any]:
    v = current_version(s)
    if v is None:
        raise NotFound("no version yet")
    return version_json(v)


def version(s: Session, version_hash: str) -> m.Version:
    key = version_hash.lower().removeprefix("0x")
    v = (
        current_version(s)
        if key == "current"
        else s.scalar(select(m.Version).where(m.Version.hash == key))
    )
    if v is None:
        raise NotFound(f"no version {version_hash}")
    return v


def recipe(s: Session, version_hash: str) -> dict[str, Any]:
    v = version(s, version_hash)
    if v.recipe is None:
        raise NotFound(f"version {v.hash[:16]}… is the base model: it has no recipe")
    return v.recipe


def mergekit_yaml(s: Session, version_hash: str) -> str:
    """The recipe as mergekit YAML; contribution models are ``base + δ`` folders to materialise
    with ``mergenet merge --export`` (paths are placeholders named by sha256)."""
    from mergenet.merge_strategies.export import mergekit_config, to_yaml
    from mergenet.merge_strategies.recipe import Recipe

    r = Recipe.model_validate(recipe(s, version_hash))
    config = mergekit_config(
        r,
        f"versions/{r.parent}",
        [f"contributions/{c.sha256}" for c in r.contributions],
        drop_noise=True,
    )
    note = ""
    if r.noise is not None:
        note = f"# mutation noise (seed {r.noise.seed}, sigma {r.noise.sigma}) is not expressible\n"
    return note + to_yaml(config)


def history(s: Session) -> dict[str, Any]:
    """Score over time: every loop evaluation, accepted versions and contributions."""
    evals = s.execute(
        select(m.Evaluation, m.Candidate)
        .join(m.Candidate, m.Candidate.id == m.Evaluation.candidate_id)
        .order_by(m.Evaluation.id)
    ).all()
    return {
        "evaluations": [
            {
                "n": i + 1,
                "at": _iso(e.created_at),
                "candidate": c.id,
                "purpose": e.purpose,
                "strategy": c.strategy,
                "kind": c.kind,
                "parent_hash": c.parent_hash,
                "score": e.score,
                "baseline": e.baseline,
                "gain": e.gain,
                "worker": e.worker,
            }
            for i, (e, c) in enumerate(evals)
        ],
        "versions": versions(s),
        "contributions": [
            contribution_json(c)
            for c in s.scalars(select(m.Contribution).order_by(m.Contribution.id))
        ],
    }


def strategies(s: Session) -> dict[str, Any]:
    """H(s) now and after every update."""
    rows = s.scalars(select(m.StrategyWeight).order_by(m.StrategyWeight.step)).all()
    steps: dict[int, dict[str, Any]] = {}
    for r in rows:
        entry = steps.setdefault(
            r.step, {"step": r.step, "candidate": r.cause_candidate_id, "weights": {}}
        )
        entry["weights"][r.strategy] = r.weight
    return {"current": current_weights(s), "history": list(steps.values())}


@dataclass(frozen=True)
class Counts:
    """What ``/metrics`` exposes, read in one session."""

    contributions_by_status: dict[str, int]
    evaluations_by_purpose: dict[str, int]
    """Every purpose, zero included."""
    versions: int
    current_gain: float
    strategy_weights: dict[str, float]


def counts(s: Session) -> Counts:
    by_status = s.execute(
        select(m.Contribution.status, func.count()).group_by(m.Contribution.status)
    ).all()
    by_purpose = dict(
        s.execute(select(m.Evaluation.purpose, func.count()).group_by(m.Evaluation.purpose)).all()
    )
    v = current_version(s)
    return Counts(
        contributions_by_status={str(st): int(n) for st, n in by_status},
        evaluations_by_purpose={str(p): int(by_purpose.get(p, 0)) for p in Purpose},
        versions=int(s.scalar(select(func.count()).select_from(m.Version)) or 0),
        current_gain=float(v.gain or 0.0) if v is not None else 0.0,
        strategy_weights=dict(sorted(current_weights(s).items())),
    )
