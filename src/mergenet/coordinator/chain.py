"""Optional chain side of the loop: pay for confirmed marginal improvement, and the on-chain
version registry for accepted versions. The coordinator runs without any of it.

A contribution is paid only when a version that newly merges it is accepted and the
leave-one-out attribution of that version is complete (:mod:`mergenet.coordinator.attribution`):
``merge_reward_per_gain × max(0, marginal − noise margin) × t``, accrued in the transaction
that records the attribution's last evaluation, one idempotent ledger entry per (version,
contribution), so a restart pays nobody twice. A score alone pays nothing. Recording a version
is a network call, so it runs after the version's row is committed; a failure is logged and
the version stays valid (``mergenet rewards reconcile`` style tooling can re-record it).
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
from mergenet.rewards.ledger import accrue, marginal_entry
from mergenet.rewards.policy import MarginalPolicy, quote_marginal
from mergenet.rewards.registry import record_version

if TYPE_CHECKING:
    from mergenet.config import Settings

log = logging.getLogger("mergenet.coordinator.chain")


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class LedgerHooks:
    """``LoopHooks`` that pay confirmed marginal improvement into the ledger (no chain needed:
    tests and tools use it on its own; :class:`ChainHooks` adds the chain)."""

    def __init__(self, *, merge_reward_per_gain: float = 100.0):
        self.merge_reward_per_gain = merge_reward_per_gain

    def contribution_scored(self, session: Session, contribution: m.Contribution) -> None:
        """Nothing: a score is recorded and decides admission to the merge pool, but an upload
        earns only through the marginal improvement it brings to an accepted version
        (:meth:`contribution_credited`). The flat fee R_b(e^(β·t·S) − 1) ≈ 0.8 tokens that
        every score just above the no-change score got paid Sybil copies and junk alike."""

    def version_accepted(self, session: Session, version: m.Version) -> None:
        """Nothing yet: the version's contributions are paid once its leave-one-out attribution
        is complete (:mod:`mergenet.coordinator.attribution`). The earlier |weight| split of
        ``merge_reward_per_gain × G`` also paid contributions already merged into the parent."""

    def contribution_credited(
        self,
        session: Session,
        version: m.Version,
        contribution: m.Contribution,
        credited: float,
    ) -> int:
        """Accrue ``merge_reward_per_gain × credited × t`` for one contribution of ``version``.

        ``credited`` = max(0, marginal − noise margin) from the attribution; t counts from the
        publication of the version the contribution DECLARES as its parent (the one it signed
        and was fine-tuned on) to its upload, whatever version it was scored on: a delta made
        on version 1 and uploaded a day later is a day late even if version 3 appeared a minute
        before the upload (counting from the version it was scored on gave it t = 1,
        :mod:`mergenet.coordinator.parents`). One ledger entry ``marginal:<version>:<sha>``:
        paid once, even if the attribution's last outcome is recorded again after a restart.
        Returns the base units accrued.
        """
        parent = session.scalar(select(m.Version).where(m.Version.hash == contribution.parent_hash))
        published = parent.created_at if parent is not None else contribution.created_at
        quote = quote_marginal(
            credited,
            submitted_at=_aware(contribution.created_at),
            parent_published_at=_aware(published),
            policy=MarginalPolicy(per_gain=self.merge_reward_per_gain),
        )
        accrue(
            session,
            contribution_id=marginal_entry(version.hash, contribution.sha256),
            account=contribution.address,
            amount=quote.amount,
            score=credited,
            t=quote.t,
        )
        return quote.amount


class ChainHooks(LedgerHooks):
    """:class:`LedgerHooks` that also record versions on the configured chain."""

    def __init__(
        self,
        settings: Settings,
        *,
        margin: float,
        base_reward: float = 1.0,
        merge_reward_per_gain: float = 100.0,
    ):
        super().__init__(merge_reward_per_gain=merge_reward_per_gain)
        self.settings = settings
        self.contracts = open_chain(settings)
        self.owner = coordinator_account(settings)
        self.margin = margin
        self.base_reward = base_reward

    def public_json(self) -> dict[str, object]:
        """The deployment as a node needs it to claim: RPC URL, chain id, contract addresses."""

        deployment = load_deployment(self.settings.data_dir)
        data = deployment.public_json() if deployment is not None else {}
        return data | {"block": self.contracts.from_block}

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
