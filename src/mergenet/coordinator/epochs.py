"""Reward epochs on a schedule: fold new accruals into a Merkle root and publish it on chain.

Publishing is idempotent (``rewards.publish``), so a crash between closing an epoch and its
confirmation is finished by the next round; a chain that is down leaves epochs pending and is
retried, never lost. One lock keeps a scheduled round and an explicit ``publish_now`` apart.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from mergenet.db import transaction
from mergenet.rewards.ledger import close_epoch
from mergenet.rewards.publish import publish_pending

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session, sessionmaker

    from mergenet.rewards.client import RewardContracts
    from mergenet.rewards.publish import Published

log = logging.getLogger("mergenet.coordinator.epochs")


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

    def publish_now(self) -> list[Published]:
        """Close an epoch if anything new accrued, then confirm every pending one."""

        with self._lock:
            with transaction(self.factory) as session:
                epoch = close_epoch(session)
                if epoch is not None:
                    log.info("epoch %s closed: %s accounts", epoch.number, epoch.accounts)
            done = publish_pending(self.factory, self.contracts, self.owner)
            for p in done:
                log.info("epoch %s confirmed on chain", p.epoch)
            return done

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            try:
                self.publish_now()
            except Exception as exc:  # the chain may be down: keep pending, retry next round
                log.warning("epoch publishing failed, will retry: %s", exc)
