"""Reward epochs on a schedule: fold new accruals into a Merkle root and publish it on chain;
then rotate the row epoch, reveal its secret and commit the next one on chain; then settle the
upload bonds of judged contributions.

Publishing is idempotent (``rewards.publish``), so a crash between closing an epoch and its
confirmation is finished by the next round; a chain that is down leaves epochs pending and is
retried, never lost. The same discipline holds for row-epoch seeds: the rotation itself is a
database transaction (:func:`mergenet.coordinator.row_epochs.rotate`); what still has to reach
the chain is read back from ``row_epochs`` every round (``commit_tx`` or, once revealed,
``reveal_tx`` still NULL) and sent by :func:`mergenet.rewards.seeds.commit_seed` /
``reveal_seed``, which find a transaction that landed before a crash instead of sending a
second one. The row epoch rotates once per closed reward epoch, after that epoch's root was
published: the rows a reward epoch was judged on are revealed only once its payout is fixed.
Commitments are sent oldest first and a reveal only after its own commitment, so the chain
never holds a reveal for an epoch it has no commitment for. One lock keeps a scheduled round
and an explicit ``publish_now`` apart.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import or_, select

from mergenet.coordinator import models as m
from mergenet.coordinator.bonds import BondKeeper
from mergenet.coordinator.row_epochs import current_row_epoch, rotate
from mergenet.db import transaction
from mergenet.rewards.ledger import close_epoch
from mergenet.rewards.models import STATE_CONFIRMED, RewardEpoch
from mergenet.rewards.publish import publish_pending
from mergenet.rewards.seeds import commit_seed, reveal_seed

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session, sessionmaker

    from mergenet.rewards.client import RewardContracts
    from mergenet.rewards.publish import Published

log = logging.getLogger("mergenet.coordinator.epochs")


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def rotation_due(session: Session) -> bool:
    """True when a reward epoch closed during the open row epoch is confirmed on chain.

    Derived from the tables, not remembered: a crash between publishing and rotating, or a
    round whose publishing failed, rotates on the next round that sees the confirmation; the
    new row epoch opens after that reward epoch closed, so it never rotates twice for it."""
    opened = _aware(current_row_epoch(session).opened_at)
    closed = session.scalars(
        select(RewardEpoch.closed_at).where(RewardEpoch.state == STATE_CONFIRMED)
    ).all()
    return any(_aware(c) >= opened for c in closed)


class EpochPublisher:
    def __init__(
        self,
        factory: sessionmaker[Session],
        contracts: RewardContracts,
        owner: LocalAccount,
        every: float,
    ):
        self.factory = factory
        self.contracts = contracts
        self.owner = owner
        self.every = every
        self._lock = threading.Lock()
        self.bonds = BondKeeper(contracts, owner) if contracts.bond is not None else None

    def publish_now(self) -> list[Published]:
        """Close an epoch if anything new accrued, confirm every pending one, then rotate the
        row epoch (once per closed reward epoch), sync seeds on chain and settle bonds."""

        with self._lock:
            with transaction(self.factory) as session:
                epoch = close_epoch(session)
                if epoch is not None:
                    log.info("epoch %s closed: %s accounts", epoch.number, epoch.accounts)
            done = publish_pending(self.factory, self.contracts, self.owner)
            for p in done:
                log.info("epoch %s confirmed on chain", p.epoch)
            try:
                if self.contracts.seeds is not None:
                    with transaction(self.factory) as session:
                        if rotation_due(session):
                            rotate(session)
                    self.sync_seeds()
            finally:  # a seed that cannot be sent does not hold back the bonds
                if self.bonds is not None:
                    self.bonds.settle_judged(self.factory)
            return done

    def sync_seeds(self) -> int:
        """Send every commitment and reveal the chain does not hold yet; returns how many were
        recorded. Raises ChainError (the round's caller logs it) with the rest still pending."""

        assert self.contracts.seeds is not None
        with transaction(self.factory) as session:
            current_row_epoch(session)  # the first epoch opens (and is committed) here
        with self.factory() as session:
            todo = session.scalars(
                select(m.RowEpoch)
                .where(
                    or_(
                        m.RowEpoch.commit_tx.is_(None),
                        m.RowEpoch.revealed_at.is_not(None) & m.RowEpoch.reveal_tx.is_(None),
                    )
                )
                .order_by(m.RowEpoch.number)
            ).all()
            pending = [(e.number, e.commitment, e.secret, e.commit_tx, e.revealed_at) for e in todo]
        sent = 0
        for number, commitment, secret, commit_tx, revealed_at in pending:
            # before a reveal too: a no-op when the chain holds it, a re-commit on a chain that
            # lost it (a reveal of an uncommitted epoch would revert every round)
            tx = commit_seed(self.contracts, self.owner, number, commitment)
            if commit_tx is None:
                self._record(number, commit_tx=tx)
                sent += 1
            if revealed_at is not None:
                reveal_tx = reveal_seed(self.contracts, self.owner, number, secret)
                self._record(number, reveal_tx=reveal_tx)
                sent += 1
                log.info("row epoch %s revealed on chain (%s)", number, reveal_tx)
        return sent

    def _record(
        self, number: int, *, commit_tx: str | None = None, reveal_tx: str | None = None
    ) -> None:
        with transaction(self.factory) as session:
            row = session.get(m.RowEpoch, number)
            assert row is not None
            if commit_tx is not None:
                row.commit_tx = commit_tx
            if reveal_tx is not None:
                row.reveal_tx = reveal_tx

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            try:
                self.publish_now()
            except Exception as exc:  # the chain may be down: keep pending, retry next round
                log.warning("epoch publishing failed, will retry: %s", exc)
