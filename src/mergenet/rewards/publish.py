"""Publish closed epochs' roots on chain, idempotently.

Exactly one root per epoch reaches the chain, whatever crashes or outages happen between
steps, because of two guards:

* on chain, the distributor only accepts an epoch number above the last one published, so a
  second transaction for the same epoch can never land;
* in the ledger, the signed transaction (and its nonce) is committed *before* it is sent; a
  restart re-sends that same transaction instead of signing a new one, then reads the chain to
  learn what happened.

Steps per epoch: ``pending`` (closed; maybe signed) → ``sent`` → ``confirmed``. Only the
newest unconfirmed epoch is sent: roots are cumulative, so an older epoch that never left the
ledger is confirmed as *superseded* once a newer root is on chain.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_typing import HexStr
from eth_utils import to_hex
from sqlalchemy import select

from mergenet.db import transaction, utcnow
from mergenet.rewards.client import ChainError, RewardContracts, build_signed, wait_receipt
from mergenet.rewards.models import (
    STATE_CONFIRMED,
    STATE_PENDING,
    STATE_SENT,
    RewardEpoch,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session, sessionmaker


class PublishError(ChainError):
    """The chain holds something the ledger cannot explain; run ``mergenet rewards reconcile``."""


@dataclass(frozen=True)
class Published:
    epoch: int
    root: str
    tx_hash: str | None
    block: int | None
    superseded: bool


def _unconfirmed(session: Session) -> list[RewardEpoch]:
    return list(
        session.scalars(
            select(RewardEpoch)
            .where(RewardEpoch.state != STATE_CONFIRMED)
            .order_by(RewardEpoch.number)
        )
    )


def _receipt(contracts: RewardContracts, tx_hash: str | None) -> dict | None:
    if not tx_hash:
        return None
    from web3.exceptions import TransactionNotFound

    try:
        return dict(contracts.w3.eth.get_transaction_receipt(HexStr(tx_hash)))
    except TransactionNotFound:
        return None


def _epoch(session: Session, number: int) -> RewardEpoch:
    """A closed epoch that must exist (publishing only walks epochs the ledger listed)."""
    epoch = session.get(RewardEpoch, number)
    if epoch is None:
        raise PublishError(f"epoch {number} is not in the ledger")
    return epoch


def _settle(session: Session, contracts: RewardContracts, epoch: RewardEpoch) -> bool:
    """Mark ``epoch`` confirmed if the chain already holds it (or a later epoch); True if so."""
    chain_epoch = contracts.epoch()
    if chain_epoch < epoch.number:
        return False
    if chain_epoch == epoch.number:
        chain_root = to_hex(contracts.merkle_root())
        if chain_root != epoch.root:
            raise PublishError(
                f"the chain's epoch {epoch.number} has root {chain_root} but the ledger's is "
                f"{epoch.root}: run `mergenet rewards reconcile`"
            )
    receipt = _receipt(contracts, epoch.tx_hash)
    if receipt is not None and receipt["status"] == 1:
        epoch.tx_block = int(receipt["blockNumber"])
    elif chain_epoch == epoch.number:
        updates = [
            u for u in contracts.root_updates(contracts.from_block) if u["epoch"] == epoch.number
        ]
        if updates:  # published by a transaction the ledger did not record
            epoch.tx_hash, epoch.tx_block = updates[-1]["tx_hash"], updates[-1]["block"]
    else:
        epoch.superseded = True
    epoch.state = STATE_CONFIRMED
    epoch.confirmed_at = utcnow()
    return True


def prepare(
    factory: sessionmaker[Session], contracts: RewardContracts, owner: LocalAccount, number: int
) -> str:
    """Sign epoch ``number``'s root update and commit the signed transaction; returns its hash.

    Nothing is sent. If a signed transaction is already stored and could still be mined (its
    nonce is not used up), it is kept.
    """
    w3 = contracts.w3
    with transaction(factory) as session:
        epoch = session.get(RewardEpoch, number)
        if epoch is None:
            raise PublishError(f"no epoch {number} in the ledger")
        if (
            epoch.raw_tx
            and epoch.tx_nonce is not None
            and w3.eth.get_transaction_count(owner.address, "latest") <= epoch.tx_nonce
        ):
            return str(epoch.tx_hash)
        root = bytes.fromhex(epoch.root[2:])
        call = contracts.distributor.functions.set_merkle_root(root, number)
        raw, tx_hash, nonce = build_signed(w3, owner, call)
        epoch.raw_tx, epoch.tx_hash, epoch.tx_nonce = to_hex(raw), tx_hash, nonce
        epoch.state = STATE_PENDING
        return tx_hash


def send(factory: sessionmaker[Session], contracts: RewardContracts, number: int) -> str | None:
    """Hand the stored signed transaction to the node (again, if need be) and mark it sent.

    Returns the node's rejection message, if any ("nonce too low" for a transaction that was
    already mined is expected after a crash); an unreachable node raises ChainError.
    """
    with transaction(factory) as session:
        epoch = session.get(RewardEpoch, number)
        if epoch is None or not epoch.raw_tx:
            raise PublishError(f"epoch {number} has no signed transaction: prepare it first")
        rejection = None
        try:
            contracts.w3.eth.send_raw_transaction(HexStr(epoch.raw_tx))
        except Exception as exc:
            contracts.epoch()  # raises if the node is unreachable rather than rejecting
            rejection = str(exc) or type(exc).__name__
        if epoch.state == STATE_PENDING:  # never downgrade a confirmed epoch
            epoch.state = STATE_SENT
            epoch.sent_at = utcnow()
        return rejection


def publish_pending(
    factory: sessionmaker[Session],
    contracts: RewardContracts,
    owner: LocalAccount,
    *,
    timeout: float = 120.0,
) -> list[Published]:
    """Bring every unconfirmed epoch to ``confirmed``; safe to run again after any failure.

    An unreachable node raises ChainError and leaves the ledger as it was (epochs pending).
    """
    try:
        contracts.epoch()
    except (OSError, ChainError) as exc:
        url = getattr(contracts.w3.provider, "endpoint_uri", "the node")
        raise ChainError(
            f"the chain at {url} is unreachable ({type(exc).__name__}); epochs stay pending: "
            "start it (`mergenet chain up`) and run `mergenet rewards publish` again"
        ) from exc
    with transaction(factory) as session:
        epochs = _unconfirmed(session)
        if not epochs:
            return []
        for epoch in epochs:
            _settle(session, contracts, epoch)
        remaining = [e.number for e in epochs if e.state != STATE_CONFIRMED]
    if remaining:
        target = remaining[-1]
        rejection = None
        for _attempt in range(3):
            tx_hash = prepare(factory, contracts, owner, target)
            rejection = send(factory, contracts, target)
            if rejection is None or _receipt(contracts, tx_hash) is not None:
                # a replaced or dropped transaction times out: the chain state below decides
                with contextlib.suppress(Exception):
                    wait_receipt(contracts.w3, tx_hash, timeout=timeout)
            with transaction(factory) as session:
                if _settle(session, contracts, _epoch(session, target)):
                    break
        else:
            raise PublishError(
                f"epoch {target} did not reach the chain after 3 attempts"
                + (f" (node said: {rejection})" if rejection else "")
            )
        with transaction(factory) as session:
            for number in remaining[:-1]:
                _settle(session, contracts, _epoch(session, number))
    with transaction(factory) as session:
        done = [session.get(RewardEpoch, e.number) for e in epochs]
        return [
            Published(e.number, e.root, e.tx_hash, e.tx_block, e.superseded)
            for e in done
            if e is not None and e.state == STATE_CONFIRMED
        ]
