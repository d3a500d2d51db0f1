"""Read side of ``/api/row-epochs``: row epochs and, once revealed, their evaluations.

Invariants (each checked by ``tests/node/test_audit.py``):

* an epoch's ``secret`` is returned only when ``revealed_at`` is set: before that no answer
  of this module contains it (the rows of an open epoch are private: anyone holding the secret
  could regenerate the questions still being scored);
* the evaluations of an epoch are listed only once it is revealed; asking earlier is a
  :class:`~mergenet.errors.Conflict` (409) that says why, an unknown epoch a
  :class:`~mergenet.errors.NotFound` (404);
* pages are in evaluation id order, at most :data:`MAX_PAGE` per request, and ``next_after``
  is the cursor of the next page (None on the last), so a client walks them without offsets.

Like :mod:`.queries` this module never imports the scheduler (import-linter's ``read-side``
contract lists it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.ecosystem.fresh_rows import POOL_PREFIX
from mergenet.errors import Conflict, NotFound

MAX_PAGE = 100
"""Evaluations per page: one carries two results of a few tasks each (~2 KB of JSON)."""


def _iso(t: Any) -> str | None:
    return t.isoformat() if t is not None else None


def epoch_json(e: m.RowEpoch) -> dict[str, Any]:
    """The public view of an epoch: no secret, whatever its state."""
    return {
        "number": e.number,
        "commitment": e.commitment,
        "opened_at": _iso(e.opened_at),
        "revealed_at": _iso(e.revealed_at),
        "commit_tx": e.commit_tx,
        "reveal_tx": e.reveal_tx,
    }


def row_epochs(s: Session) -> list[dict[str, Any]]:
    """Every row epoch, oldest first (never a secret)."""
    return [epoch_json(e) for e in s.scalars(select(m.RowEpoch).order_by(m.RowEpoch.number))]


def _epoch(s: Session, number: int) -> m.RowEpoch:
    e = s.get(m.RowEpoch, number)
    if e is None:
        raise NotFound(f"no row epoch {number} (GET /api/row-epochs lists them)")
    return e


def row_epoch(s: Session, number: int) -> dict[str, Any]:
    """One epoch, with its secret only once revealed."""
    e = _epoch(s, number)
    return epoch_json(e) | {"secret": e.secret if e.revealed_at is not None else None}


PoolRows = Callable[[int, str, int], Sequence[Mapping[str, Any]]]
"""(epoch, rows_label, seed) → the private pool's rows an evaluation scored."""


def _sample(ev: m.Evaluation, sample: dict[str, Any], pool: PoolRows | None) -> dict[str, Any]:
    label = ev.rows_label or ""
    rows = None
    if pool is not None and ev.row_epoch is not None and label.startswith(POOL_PREFIX + ":"):
        rows = [dict(r) for r in pool(ev.row_epoch, label, ev.sample_seed)]
    return {
        "row_epoch": ev.row_epoch,
        "rows_label": ev.rows_label,
        "seed": ev.sample_seed,
        "rows": rows,
        **sample,
        **_recorded_n(ev),
    }


def _recorded_n(ev: m.Evaluation) -> dict[str, int]:
    """The ``n`` an evaluation was scored with, read off its own result: each task scored
    min(n, rows held) accuracy rows, so the largest ``n_rows`` re-draws the same sample
    (confirmations score more rows than selections; the loop's setting may also change
    between restarts). Empty when the result names no task (the shared default applies)."""
    tasks = (ev.result or {}).get("tasks") or {}
    counts: list[int] = [
        t["n_rows"]
        for t in tasks.values()
        if isinstance(t, dict) and isinstance(t.get("n_rows"), int) and t["n_rows"] > 0
    ]
    return {"n": max(counts)} if counts else {}


def evaluation_json(
    ev: m.Evaluation, cand: m.Candidate, sample: dict[str, Any], pool: PoolRows | None = None
) -> dict[str, Any]:
    return {
        "id": ev.id,
        "candidate_id": ev.candidate_id,
        "purpose": ev.purpose,
        "recipe": cand.recipe,
        "sample": _sample(ev, sample, pool),
        "result": ev.result,
        "parent_result": ev.parent_result,
        "relative_distance": ev.relative_distance,
        "score": ev.score,
        "created_at": _iso(ev.created_at),
    }


def revealed_evaluations(
    s: Session,
    number: int,
    sample: dict[str, Any],
    *,
    after: int = 0,
    limit: int = MAX_PAGE,
    pool: PoolRows | None = None,
) -> dict[str, Any]:
    """A page of a revealed epoch's evaluations (ids > ``after``); 409 while it is open.

    ``sample`` holds what every evaluation of this coordinator shares (``n``). Rows from a
    private pool cannot be regenerated from the secret (their permutation is keyed by a key
    that is never revealed), so ``pool`` supplies them: used rows are retired, so once their
    epoch is revealed they may be published."""
    e = _epoch(s, number)
    if e.revealed_at is None:
        raise Conflict(
            f"row epoch {number} is still open: its rows are private until it closes and its "
            "secret is revealed; its evaluations are listed then"
        )
    limit = max(1, min(limit, MAX_PAGE))
    rows = s.execute(
        select(m.Evaluation, m.Candidate)
        .join(m.Candidate, m.Candidate.id == m.Evaluation.candidate_id)
        .where(m.Evaluation.row_epoch == number, m.Evaluation.id > after)
        .order_by(m.Evaluation.id)
        .limit(limit + 1)
    ).all()
    page = [evaluation_json(ev, cand, sample, pool) for ev, cand in rows[:limit]]
    more = len(rows) > limit
    return {
        "epoch": number,
        "evaluations": page,
        "next_after": page[-1]["id"] if more else None,
    }
