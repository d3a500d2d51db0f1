"""The loop's state as the read side sees it: the vocabulary and a few queries.

The API and the live page import this module, never the scheduler
(:mod:`mergenet.coordinator.loop`): it pulls in SQLAlchemy and the table models only (no
numpy, torch or evaluation pool), so the read side stays light and cannot start work.
The vocabulary (statuses, kinds, purposes) lives in :mod:`mergenet.coordinator.status`; the
purposes are also exported here under the names the read side has always imported.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.coordinator.status import EVOLUTION_KINDS, Kind, Purpose

__all__ = [
    "CONFIRMATION",
    "CONTRIBUTION",
    "EVOLUTION_KINDS",
    "SELECTION",
    "Kind",
    "Purpose",
    "current_version",
    "current_weights",
    "evolution_evaluations",
]

SELECTION = Purpose.SELECTION
CONFIRMATION = Purpose.CONFIRMATION
CONTRIBUTION = Purpose.CONTRIBUTION


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
