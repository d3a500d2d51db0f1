"""Fair contribution scoring: round-robin over addresses, and slots kept for the evolution loop.

Before, scoring was first come first served by contribution id, so 8 junk uploads from 8 fresh
keys made an honest contribution wait 99 s. Now:

* **Round-robin, FIFO over addresses.** Each address waiting to be scored holds one place in
  a queue; the loop scores the first address's oldest waiting contribution, and an address
  that still has more goes to the back, behind every address waiting at that moment. An
  address's place is ``max(2·first_waiting_id, 2·mark + 1)`` (ties by serve order), where
  ``first_waiting_id`` is its oldest unscored contribution's id (when it began waiting) and
  ``mark`` the newest contribution id anyone had when it was last served (kept in
  ``loop_state`` as ``rr:<address>``, so a restart keeps the order). So one contribution per
  address per turn, and addresses that arrive later — a flood of fresh keys — always queue
  behind an address already waiting: ids only grow.
* **Per-address quota.** At most ``SubmissionLimits.max_pending_per_address`` (3) unscored
  uploads per address; the next answers 429 with Retry-After and records nothing
  (:mod:`mergenet.coordinator.submissions`), so one key cannot fill the queue.
* **Reserved slots.** Contribution scorings in flight stay at or below pool capacity −
  ``reserved_slots`` while the evolution loop has work of its own, so a flood never stalls
  proposals and confirmations; a slot the loop cannot use (no merge pool yet) still scores.

Invariant: the order is computed from rows (contributions, queued scoring candidates,
``loop_state``), in the caller's transaction; nothing here dispatches.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.coordinator import proposals
from mergenet.coordinator.status import CandidateStatus, ContributionStatus, Kind

MARK = "rr:"
"""``loop_state`` key prefix of an address's last-served mark."""
SERVES = "rr_serves"
"""``loop_state`` counter of scorings dispatched (orders addresses served at the same mark)."""


def scoring_cap(capacity: int, reserved: int) -> int:
    """How many contribution scorings may be in flight: capacity − reserved, at least 1."""
    return max(1, capacity - max(0, reserved))


def scorings_in_flight(s: Session, in_flight: Collection[int]) -> int:
    if not in_flight:
        return 0
    return int(
        s.scalar(
            select(func.count())
            .select_from(m.Candidate)
            .where(m.Candidate.id.in_(list(in_flight)), m.Candidate.kind == Kind.CONTRIBUTION)
        )
        or 0
    )


def _marks(s: Session, addresses: Collection[str]) -> dict[str, tuple[int, int]]:
    keys = [MARK + a for a in addresses]
    if not keys:
        return {}
    out = {}
    for row in s.scalars(select(m.LoopState).where(m.LoopState.key.in_(keys))):
        mark, seq = row.value.split(":")
        out[row.key[len(MARK) :]] = (int(mark), int(seq))
    return out


def turns(s: Session, in_flight: Collection[int]) -> list[m.Contribution]:
    """Each waiting address's oldest contribution not being scored, in queue order."""
    pending = list(
        s.scalars(
            select(m.Contribution)
            .where(m.Contribution.status == ContributionStatus.RECEIVED)
            .order_by(m.Contribution.id)
        )
    )
    if not pending:
        return []
    busy = _busy(s, in_flight)
    first: dict[str, int] = {}
    ready: dict[str, m.Contribution] = {}
    for c in pending:
        first.setdefault(c.address, c.id)
        if c.sha256 not in busy:
            ready.setdefault(c.address, c)
    marks = _marks(s, ready)

    def place(address: str) -> tuple[int, int]:
        mark, seq = marks.get(address, (-1, 0))
        return max(2 * first[address], 2 * mark + 1), seq

    return [ready[a] for a in sorted(ready, key=place)]


def _busy(s: Session, in_flight: Collection[int]) -> set[str]:
    """Contributions whose scoring is in flight now (each waits for its one scoring)."""
    if not in_flight:
        return set()
    return {
        sha
        for sha in s.scalars(
            select(m.Candidate.contribution_sha).where(
                m.Candidate.kind == Kind.CONTRIBUTION,
                m.Candidate.status == CandidateStatus.QUEUED,
                m.Candidate.id.in_(list(in_flight)),
            )
        )
        if sha is not None
    }


def next_scoring(s: Session, version: m.Version, in_flight: Collection[int]) -> m.Candidate | None:
    """The scoring candidate of the first address's turn, on ``version`` (the address goes to
    the back). One scoring at a time per contribution: while one is in flight (even on a
    version replaced since) the contribution waits for it, so a version accepted mid-scoring
    cannot get it scored twice; a queued scoring on a replaced version that is not in flight
    (left by a restart) fails instead of staying queued forever."""
    for c in turns(s, in_flight):
        cand = None
        for q in s.scalars(
            select(m.Candidate).where(
                m.Candidate.contribution_sha == c.sha256,
                m.Candidate.kind == Kind.CONTRIBUTION,
                m.Candidate.status == CandidateStatus.QUEUED,
            )
        ).all():
            if q.parent_hash == version.hash:
                cand = q
            else:
                q.status = CandidateStatus.FAILED
                q.error = "parent superseded before evaluation"
        if cand is None:
            recipe = proposals.scoring_recipe(version.hash, c.sha256)
            cand = proposals.new_candidate(
                s, recipe, Kind.CONTRIBUTION, secrets.randbits(62), c.sha256
            )
        served(s, c.address)
        return cand
    return None


def served(s: Session, address: str) -> None:
    """Send ``address`` to the back of the queue (behind everyone who uploaded so far)."""
    newest = int(s.scalar(select(func.max(m.Contribution.id))) or 0)
    counter = s.get(m.LoopState, SERVES)
    if counter is None:
        counter = m.LoopState(key=SERVES, value="0")
        s.add(counter)
    counter.value = str(int(counter.value) + 1)
    value = f"{newest}:{counter.value}"
    row = s.get(m.LoopState, MARK + address)
    if row is None:
        s.add(m.LoopState(key=MARK + address, value=value))
    else:
        row.value = value
