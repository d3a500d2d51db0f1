"""Optional chain side of the loop: reward accrual for scored contributions, and the on-chain
version registry for accepted versions. The coordinator runs without any of it.

Accrual happens in the same transaction that records the contribution's score (the ledger
is idempotent per contribution, so a restart pays nobody twice). Recording a version is a
network call, so it runs after the version's row is committed; a failure is logged and the
version stays valid (``mergenet rewards reconcile`` style tooling can re-record it).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m

if TYPE_CHECKING:
    from mergenet.config import Settings

log = logging.getLogger("mergenet.coordinator.chain")


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class ChainHooks:
    """``LoopHooks`` that accrue rewards and record versions on the configured chain."""

    def __init__(self, settings: Settings, *, margin: float, base_reward: float = 1.0):
        from mergenet.rewards.chain import coordinator_account, open_chain

        self.contracts = open_chain(settings)
        self.owner = coordinator_account(settings)
        self.margin = margin
        self.base_reward = base_reward

    def contribution_scored(self, session: Session, contribution: m.Contribution) -> None:
        """Accrue R for S above the no-change score of its own evaluation plus the margin."""
        from mergenet.rewards.ledger import accrue
        from mergenet.rewards.policy import RewardPolicy, quote_reward

        baseline = float((contribution.metrics or {}).get("baseline", 1.0))
        parent = session.scalar(select(m.Version).where(m.Version.hash == contribution.scored_on))
        published = parent.created_at if parent is not None else contribution.created_at
        quote = quote_reward(
            float(contribution.score or 0.0),
            submitted_at=_aware(contribution.created_at),
            parent_published_at=_aware(published),
            policy=RewardPolicy(
                threshold=min(1.0, baseline + self.margin), base_reward=self.base_reward
            ),
        )
        accrue(
            session,
            contribution_id=contribution.sha256,
            account=contribution.address,
            amount=quote.amount,
            score=contribution.score,
            t=quote.t,
        )
        contribution.reward = str(quote.amount)

    def version_accepted(self, session: Session, version: m.Version) -> None:
        """Nothing inside the transaction; see :meth:`record`."""

    def record(self, version: m.Version) -> str | None:
        from mergenet.rewards.registry import record_version

        try:
            return record_version(
                self.contracts,
                self.owner,
                version_hash=version.hash,
                parent_hash=version.parent_hash,
                recipe_hash=version.recipe_hash or version.hash,
                score=float(version.score or 0.0),
            )
        except Exception:
            log.exception("recording version %s on chain failed", version.hash[:12])
            return None
