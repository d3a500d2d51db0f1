"""Leave-one-out attribution: what each contribution merged into an accepted version added.

Rewards follow confirmed marginal improvement, not a fee per upload. When version V (parent P)
is accepted, each contribution c that V's recipe newly adds, or weights above P's recipe
(:func:`mergenet.coordinator.proposals.credited`), is priced by paired evaluations on ONE fresh
sample (a new seed on ``confirm_rows``, shared by all of them, so every evaluation sees the same
rows): the full recipe V, and per c the recipe V∖c
(:func:`~mergenet.coordinator.proposals.leave_one_out`: same strategy, params, seed and noise,
on P), each against P. With the loop's gain G (:mod:`mergenet.coordinator.acceptance`)

    marginal_c = G(V | P) − G(V∖c | P),      credited_c = max(0, marginal_c − attribution_margin)

and a coordinator with a chain pays ``merge_reward_per_gain × credited_c × t_c``
(:meth:`mergenet.coordinator.chain.ChainHooks.contribution_credited`, t from
:mod:`mergenet.rewards.temporal`), one ledger entry ``marginal:<version>:<sha>`` per (V, c).
A chainless coordinator records the marginals all the same.

Cost: 1 + k evaluations per accepted version with k credited contributions (none when k = 0;
a V∖c with nothing left is P itself, G(P | P) = 0, not evaluated), scheduled after
contribution scoring and confirmations and before new proposals, and not counted against
``max_evaluations``. On the world's 16-row samples that is one to nine evaluations per version.

What it guarantees (G is close to additive in small task-vector weights, the regime merges
use): a Sybil who splits one delta into parts over several keys (e.g. by layer; halves of the
same vector are near copies, refused at upload) has each part's removal lose about that part's
share, so the parts earn in total about what the whole delta would have, less one noise margin
each; junk and an exact copy of a delta already merged change nothing when removed, so their
marginal is sampling noise (~0.002–0.005, acceptance.py) and ``attribution_margin`` (0.005)
pays them ~0; a contribution merged before at the same or a higher weight earns nothing again.
The margin absorbs the loss terms' noise, not a flipped answer: if removing a junk delta flips
one near-tie answer on the 16-row sample, G moves by γ/160 = 0.0125 and it is paid ~0.75
tokens; pairing keeps that rare (V and V∖c differ only by the junk's small weighted share).
Not guaranteed: deltas that only help together (each gets the whole joint gain) or that are
redundant with each other (each gets ~0); Shapley values would fix both at 2^k evaluations.

Invariants. The plan (seed, candidate ids) is written into ``V.metrics["attribution"]`` in
the transaction that creates V, and its evaluations are plain queued candidates, so a restart
re-dispatches them; the result is computed once, in the transaction that records the last of
them (state ``pending`` → ``done``), and each ledger entry is idempotent by id, so nothing is
paid twice across restarts. A failed evaluation pays its entry nothing (marginal ``None``);
a failed evaluation of V itself pays nobody for V (state ``failed``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.coordinator import proposals
from mergenet.coordinator.status import CandidateStatus, Kind
from mergenet.merge_strategies.recipe import Recipe

PENDING, DONE, FAILED = "pending", "done", "failed"


def _candidate(s: Session, recipe: Recipe, removed: str | None, seed: int) -> m.Candidate:
    return proposals.new_candidate(s, recipe, Kind.ATTRIBUTION, seed, removed)


def next_queued(s: Session, in_flight: Collection[int]) -> m.Candidate | None:
    """The oldest queued attribution evaluation not in flight. Never failed as superseded:
    it is built on V's parent P on purpose, and P's weights stay in the store."""
    for cand in s.scalars(
        select(m.Candidate)
        .where(m.Candidate.status == CandidateStatus.QUEUED, m.Candidate.kind == Kind.ATTRIBUTION)
        .order_by(m.Candidate.id)
    ):
        if cand.id not in in_flight:
            return cand
    return None


def plan(s: Session, version: m.Version, seed: int) -> dict[str, Any] | None:
    """Queue V and each V∖c on P (seed ``seed``); the plan for ``V.metrics``, None if no
    contribution of V is eligible for credit (a mutation of the parent's own recipe)."""
    if not version.recipe or version.parent_hash is None:
        return None
    recipe = Recipe.model_validate(version.recipe)
    parent = s.scalar(select(m.Version).where(m.Version.hash == version.parent_hash))
    before = Recipe.model_validate(parent.recipe) if parent is not None and parent.recipe else None
    credit = []
    for sha in proposals.credited(recipe, before):
        row = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == sha))
        if row is None:
            continue  # a recipe naming an unknown delta (never one the loop proposed)
        rest = proposals.leave_one_out(recipe, sha)
        cand = _candidate(s, rest, sha, seed) if rest is not None else None
        credit.append(
            {"sha256": sha, "address": row.address, "candidate": None if cand is None else cand.id}
        )
    if not credit:
        return None
    full = _candidate(s, recipe, None, seed)
    return {"state": PENDING, "seed": seed, "full": full.id, "credit": credit}


def _version_of(s: Session, cand: m.Candidate) -> tuple[m.Version, dict[str, Any]] | None:
    """The version whose plan holds ``cand``, and that plan (a child of the candidate's parent)."""
    for v in s.scalars(select(m.Version).where(m.Version.parent_hash == cand.parent_hash)):
        p = (v.metrics or {}).get("attribution")
        if p and (p["full"] == cand.id or any(e["candidate"] == cand.id for e in p["credit"])):
            return v, p
    return None


def finish(s: Session, cand: m.Candidate, margin: float, hooks: object | None) -> None:
    """Once none of the plan's evaluations is queued: marginals, credit, and the hooks' pay.

    ``hooks`` may have ``contribution_credited(session, version, contribution, credited)``
    returning the base units it accrued (or None); hooks without it (tests, chainless) are
    skipped. Runs in the caller's transaction; a plan already finished is left alone.
    """
    found = _version_of(s, cand)
    if found is None:
        return
    version, p = found
    if p["state"] != PENDING:
        return
    ids = [p["full"], *(e["candidate"] for e in p["credit"] if e["candidate"] is not None)]
    rows = {c.id: c for c in s.scalars(select(m.Candidate).where(m.Candidate.id.in_(ids)))}
    if any(c.status == CandidateStatus.QUEUED for c in rows.values()):
        return
    full = rows[p["full"]]
    p = dict(p, state=FAILED if full.status != CandidateStatus.DONE else DONE, gain=full.gain)
    if p["state"] == DONE:
        p["credit"] = [
            _credit(s, version, e, float(full.gain or 0.0), rows, margin, hooks)
            for e in p["credit"]
        ]
    p["margin"] = margin
    version.metrics = dict(version.metrics or {}) | {"attribution": p}


def _credit(
    s: Session,
    version: m.Version,
    entry: dict[str, Any],
    full_gain: float,
    rows: dict[int, m.Candidate],
    margin: float,
    hooks: object | None,
) -> dict[str, Any]:
    """One contribution's marginal, credit and reward, stored on the plan and the contribution."""
    ablation = rows.get(entry["candidate"]) if entry["candidate"] is not None else None
    if ablation is not None and ablation.status != CandidateStatus.DONE:
        return entry | {"marginal": None, "credited": 0.0}
    without = float(ablation.gain or 0.0) if ablation is not None else 0.0
    marginal = full_gain - without
    credited = max(0.0, marginal - margin)
    out = entry | {"gain_without": without, "marginal": marginal, "credited": credited}
    c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == entry["sha256"]))
    if c is None:
        return out
    pay = getattr(hooks, "contribution_credited", None)
    reward = pay(s, version, c, credited) if pay is not None and credited > 0 else None
    if reward is not None:
        out["reward"] = str(reward)
        c.reward = str(int(c.reward or 0) + int(reward))
    history = list((c.metrics or {}).get("attribution", []))
    history.append(
        {k: out.get(k) for k in ("marginal", "credited", "reward")} | {"version": version.hash}
    )
    c.metrics = dict(c.metrics or {}) | {"attribution": history}
    return out
