"""Response bodies of ``/api/row-epochs`` (:mod:`..routes.epochs`), as pydantic models.

Kept beside :mod:`.schemas` (same ``Schema`` base, same invariants: ISO 8601 timestamps as
the read side formats them, ``X | None`` exactly where the read side answers ``null``). The one
invariant of their own: ``secret`` is ``null`` until the epoch is revealed, and the
evaluations of an epoch are served only once it is (the rows they scored stay private while
their epoch is open).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mergenet.coordinator.api.schemas import Schema


class RowEpoch(Schema):
    """A row epoch as anyone may see it: its commitment always, its secret once revealed."""

    number: int = Field(description="1, 2, …; the current epoch is the highest")
    commitment: str = Field(description="sha256 hex of the epoch's 32-byte secret")
    opened_at: str | None
    revealed_at: str | None = Field(description="null while the epoch is open")
    commit_tx: str | None = Field(description="the on-chain commitment's transaction, if any")
    reveal_tx: str | None = Field(description="the on-chain reveal's transaction, if any")


class RevealedRowEpoch(RowEpoch):
    secret: str | None = Field(
        description="hex of the secret the epoch's rows were drawn from; null until revealed"
    )


class AuditSample(Schema):
    """Which rows an evaluation scored: regenerate them from the revealed secret."""

    row_epoch: int
    rows_label: str | None = Field(
        description="how the rows were drawn: ``gen:<purpose>:<per_task>:<tasks>`` (regenerated "
        "from the secret) or ``pool:<start>:<per_task>`` (a private pool's retired rows)"
    )
    seed: int = Field(description="the evaluation's sample seed")
    n: int = Field(
        description="rows per task for perplexity and accuracy: the loop's sample_n, which every "
        "evaluation is dispatched with (not stored per evaluation; constant unless the "
        "coordinator was restarted with another)"
    )
    rows: list[dict[str, Any]] | None = Field(
        default=None,
        description="a private pool's rows (retired once used), which the secret cannot "
        "regenerate; null for generated rows",
    )


class AuditEvaluation(Schema):
    """One recorded evaluation, with everything needed to re-run it and every number to check."""

    id: int
    candidate_id: int
    purpose: str = Field(description="selection, confirmation, contribution, …")
    recipe: dict[str, Any] = Field(description="the candidate's recipe (merge_strategies.recipe)")
    sample: AuditSample
    result: dict[str, Any] = Field(description="the candidate's EvalResult as recorded")
    parent_result: dict[str, Any] = Field(description="the parent's EvalResult as recorded")
    relative_distance: float = Field(description="‖θ_f − θ_b‖ / ‖θ_b‖ as recorded")
    score: float = Field(description="S the coordinator computed from these numbers")
    created_at: str | None


class EpochEvaluations(Schema):
    """A page of a revealed epoch's evaluations, in id order."""

    epoch: int
    evaluations: list[AuditEvaluation]
    next_after: int | None = Field(
        description="pass as ?after= for the next page; null on the last page"
    )
