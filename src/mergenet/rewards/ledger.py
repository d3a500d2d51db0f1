"""The rewards ledger: accrue per contribution, close epochs into Merkle roots, read totals.

An accrual's id names what it pays for: a contribution's sha256 (the flat per-upload fee of
earlier releases, kept readable), or :func:`marginal_entry` for a contribution's confirmed
marginal improvement to one accepted version (what the coordinator pays now).

Every function works inside the caller's SQLAlchemy session/transaction, so the coordinator
can record a score and its reward in one commit. Accruing is idempotent per contribution, and
closing an epoch is one transaction: accruals, cumulative entries and root appear together or
not at all.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from eth_utils import is_address, to_checksum_address, to_hex
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.db import make_engine, make_session_factory, utcnow
from mergenet.errors import InvalidInput
from mergenet.rewards.merkle import MAX_AMOUNT, MerkleTree
from mergenet.rewards.models import (
    STATE_CONFIRMED,
    RewardAccrual,
    RewardEntry,
    RewardEpoch,
)

if TYPE_CHECKING:
    from mergenet.config import Settings


class LedgerError(InvalidInput):
    """Bad input to the ledger, or a ledger that contradicts itself."""


def checksum_account(account: str) -> str:
    if not isinstance(account, str) or not is_address(account):
        raise LedgerError(f"{account!r} is not an Ethereum address (0x followed by 40 hex digits)")
    return to_checksum_address(account)


def marginal_entry(version_hash: str, contribution_sha: str) -> str:
    """The ledger id of one contribution's pay for its marginal improvement to one version:
    ``marginal:<first 32 hex of the version>:<sha256>`` (106 characters, under the 128 cap;
    32 hex digits are 128 bits, so two versions never share an id)."""
    return f"marginal:{version_hash[:32]}:{contribution_sha}"


def accrue(
    session: Session,
    *,
    contribution_id: str,
    account: str,
    amount: int,
    score: float | None = None,
    t: float | None = None,
) -> RewardAccrual:
    """Credit ``amount`` base units to ``account`` for one contribution (idempotent).

    Recording the same contribution again with the same account and amount returns the first
    record; a different account or amount is an error (a contribution is paid once).
    """
    if not contribution_id or len(contribution_id) > 128:
        raise LedgerError("contribution_id must be a non-empty string of at most 128 characters")
    account = checksum_account(account)
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_AMOUNT:
        raise LedgerError(
            f"amount must be an integer number of base units in [0, 2**128), got {amount!r}"
        )
    existing = session.scalar(
        select(RewardAccrual).where(RewardAccrual.contribution_id == contribution_id)
    )
    if existing is not None:
        if existing.account != account or existing.amount != amount:
            raise LedgerError(
                f"contribution {contribution_id} already accrued {existing.amount} to "
                f"{existing.account}; a contribution is rewarded once"
            )
        return existing
    row = RewardAccrual(
        contribution_id=contribution_id, account=account, amount=amount, score=score, t=t
    )
    session.add(row)
    session.flush()
    return row


def latest_epoch(session: Session, *, state: str | None = None) -> RewardEpoch | None:
    query = select(RewardEpoch).order_by(RewardEpoch.number.desc()).limit(1)
    if state is not None:
        query = query.where(RewardEpoch.state == state)
    return session.scalar(query)


def epoch_amounts(session: Session, number: int) -> dict[str, int]:
    """``{account: cumulative amount}`` committed to by epoch ``number``'s root."""
    rows = session.execute(
        select(RewardEntry.account, RewardEntry.cumulative_amount).where(
            RewardEntry.epoch_number == number
        )
    )
    return {account: amount for account, amount in rows}


def close_epoch(session: Session, *, now: datetime | None = None) -> RewardEpoch | None:
    """Fold every unassigned accrual into a new epoch with a fresh root; None if nothing new.

    Epochs close on demand (``mergenet rewards close-epoch``) or from the coordinator's
    schedule; the new epoch starts in state ``pending`` until published.
    """
    new = session.scalars(
        select(RewardAccrual).where(RewardAccrual.epoch_number.is_(None)).order_by(RewardAccrual.id)
    ).all()
    if not new:
        return None
    previous = latest_epoch(session)
    cumulative: dict[str, int] = defaultdict(int)
    if previous is not None:
        cumulative.update(epoch_amounts(session, previous.number))
    for accrual in new:
        cumulative[accrual.account] += accrual.amount
    cumulative = {a: v for a, v in cumulative.items() if v > 0}
    if not cumulative:
        return None  # only zero rewards so far: nothing to commit to
    for account, value in cumulative.items():
        if value > MAX_AMOUNT:
            raise LedgerError(f"{account}'s cumulative amount {value} exceeds 2**128 − 1")
    tree = MerkleTree.build(cumulative)
    number = (previous.number if previous else 0) + 1
    epoch = RewardEpoch(
        number=number,
        closed_at=now or utcnow(),
        root=to_hex(tree.root),
        total=sum(cumulative.values()),
        accounts=len(cumulative),
    )
    session.add(epoch)
    session.flush()
    session.add_all(
        RewardEntry(epoch_number=number, account=a, cumulative_amount=v)
        for a, v in cumulative.items()
    )
    for accrual in new:
        accrual.epoch_number = number
    session.flush()
    return epoch


def accrued_total(session: Session, account: str) -> int:
    """Everything credited to ``account``, published or not."""
    account = checksum_account(account)
    amounts = session.scalars(select(RewardAccrual.amount).where(RewardAccrual.account == account))
    return sum(amounts)


def latest_confirmed_epoch(session: Session) -> RewardEpoch | None:
    return latest_epoch(session, state=STATE_CONFIRMED)


def open_ledger(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the ledger in ``settings``' database, migrated to the newest schema first
    (Alembic is the schema's one path; ``coordinator up`` migrates the same way)."""
    from mergenet.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return make_session_factory(engine)
