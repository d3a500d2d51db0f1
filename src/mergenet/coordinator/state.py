"""The loop's state as the read side sees it: statuses, kinds, purposes and two queries.

The API and the live page import this module, never the scheduler
(:mod:`mergenet.coordinator.loop`): it pulls in SQLAlchemy and the table models only (no
numpy, torch or evaluation pool), so the read side stays light and cannot start work.

The enums are ``StrEnum``: each member *is* its string, so the database columns, the JSON the
API returns and the event stream carry the same plain values as before the enums existed.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m


class Purpose(StrEnum):
    """Why an evaluation ran (``evaluations.purpose``)."""

    SELECTION = "selection"
    """On the version's shared selection sample: ranks candidates built on that version."""
    CONFIRMATION = "confirmation"
    """On a fresh sample, for a candidate that passed selection."""
    CONTRIBUTION = "contribution"
    """Scores a new contribution (current + δ) against the current version."""


class Kind(StrEnum):
    """How a candidate was made (``candidates.kind``)."""

    CONTRIBUTION = "contribution"
    """current + δ at weight 1: a contribution's scoring, never a version."""
    SINGLE = "single"
    MULTI = "multi"
    CROSSOVER = "crossover"
    MUTATION = "mutation"


EVOLUTION_KINDS = (Kind.SINGLE, Kind.MULTI, Kind.CROSSOVER, Kind.MUTATION)
"""The kinds the loop proposes; only these can become versions."""

SELECTION, CONFIRMATION, CONTRIBUTION = (
    Purpose.SELECTION,
    Purpose.CONFIRMATION,
    Purpose.CONTRIBUTION,
)


def current_version(session: Session) -> m.Version | None:
    """The newest accepted version (the base of every new candidate); None before the first."""
    return session.scalar(select(m.Version).order_by(m.Version.id.desc()).limit(1))


def current_weights(session: Session) -> dict[str, float]:
    """H(s) as last written (strategy → weight); empty before the loop first starts."""
    step = session.scalar(select(func.max(m.StrategyWeight.step)))
    if step is None:
        return {}
    rows = session.scalars(select(m.StrategyWeight).where(m.StrategyWeight.step == step))
    return {r.strategy: r.weight for r in rows}


def evolution_evaluations(session: Session) -> int:
    """Selection + confirmation evaluations so far (what ``max_evaluations`` counts)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(m.Evaluation)
            .where(m.Evaluation.purpose.in_((Purpose.SELECTION, Purpose.CONFIRMATION)))
        )
        or 0
    )
