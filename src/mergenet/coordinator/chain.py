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
from mergenet.rewards.chain import coordinator_account, open_chain
from mergenet.rewards.deployment import load_deployment
from mergenet.rewards.ledger import accrue
from mergenet.rewards.policy import RewardPolicy, quote_reward
from mergenet.rewards.registry import record_version
from mergenet.rewards.units import to_base_units

if TYPE_CHECKING:
    from mergenet.config import Settings

log = logging.getLogger("mergenet.coordinator.chain")


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class ChainHooks:
    """``LoopHooks`` that accrue rewards and record versions on the configured chain."""

    def __init__(
        self,
        settings: Settings,
        *,
        margin: float,
        base_reward: float = 1.0,
        merge_reward_per_gain: float = 100.0,
    ):

        self.settings = settings
        self.contracts = open_chain(settings)
        self.owner = coordinator_account(settings)
        self.margin = margin
        self.base_reward = base_reward
        self.merge_reward_per_gain = merge_reward_per_gain

    def public_json(self) -> dict[str, object]:
        """The deployment as a node needs it to claim: RPC URL, chain id, contract addresses."""

        deployment = load_deployment(self.settings.data_dir)
        data = deployment.public_json() if deployment is not None else {}
        return data | {"block": self.contracts.from_block}

    def contribution_scored(self, session: Session, contribution: m.Contribution) -> None:
        """Accrue R for S above the no-change score of its own evaluation plus the margin."""

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
        """Credit the contributions merged into an accepted version with a share of its gain.

        The pool is ``merge_reward_per_gain`` tokens per unit of the version's confirmed gain
        G = ΔS + γ·ΔA (see :mod:`mergenet.coordinator.acceptance`), split over the recipe's
        contributions in proportion to |weight|. Each share is its own
        ledger entry (``merge:<version>:<contribution>``), so it is paid once, in the same
        transaction that creates the version. Mutation-only versions merge no contribution.
        """

        parts = [c for c in (version.recipe or {}).get("contributions", []) if c.get("sha256")]
        gain = float(version.gain or 0.0)
        if not parts or gain <= 0:
            return
        total_weight = sum(abs(float(c.get("weight", 1.0))) for c in parts) or float(len(parts))
        pool = self.merge_reward_per_gain * gain
        for c in parts:
            row = session.scalar(select(m.Contribution).where(m.Contribution.sha256 == c["sha256"]))
            if row is None:
                continue
            share = pool * abs(float(c.get("weight", 1.0))) / total_weight
            accrue(
                session,
                contribution_id=f"merge:{version.hash[:32]}:{row.sha256}",
                account=row.address,
                amount=to_base_units(share),
                score=version.score,
            )

    def record(self, version: m.Version) -> None:
        """Record an accepted version in the VersionRegistry (best effort: logged on failure)."""
        try:
            record_version(
                self.contracts,
                self.owner,
                version_hash=version.hash,
                parent_hash=version.parent_hash,
                recipe_hash=version.recipe_hash or version.hash,
                score=float(version.score or 0.0),
            )
        except Exception:
            log.exception("recording version %s on chain failed", version.hash[:12])
