"""The rewards ledger's tables, declared on the shared ``Base``.

They are created only by the Alembic migrations (:mod:`mergenet.migrate`), like every table.

Amounts are integer token base units up to 2**256 and are stored as decimal strings
(``UInt256``) because SQLite integers stop at 2**63 and its NUMERIC is a float.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import Mapped, mapped_column

from mergenet.db import Base, utcnow


class EpochState(StrEnum):
    """``reward_epochs.state``: pending → sent → confirmed (the member is the stored string)."""

    PENDING = "pending"
    """Closed, root computed, not (known to be) sent; may hold a signed transaction."""
    SENT = "sent"
    """Transaction handed to the node; no receipt seen yet."""
    CONFIRMED = "confirmed"
    """The chain holds this epoch's root (or a later epoch superseded it on chain)."""


STATE_PENDING, STATE_SENT, STATE_CONFIRMED = (
    EpochState.PENDING,
    EpochState.SENT,
    EpochState.CONFIRMED,
)


class UInt256(TypeDecorator[int]):
    """A non-negative integer below 2**256, stored as its decimal string."""

    impl = String(78)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: object) -> str | None:
        if value is None:
            return None
        value = int(value)
        if not 0 <= value < 2**256:
            raise ValueError(f"amount {value} outside [0, 2**256)")
        return str(value)

    def process_result_value(self, value: str | None, dialect: object) -> int | None:
        return None if value is None else int(value)


class RewardAccrual(Base):
    """One scored contribution's reward, credited to its contributor's account."""

    __tablename__ = "reward_accruals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contribution_id: Mapped[str] = mapped_column(String(128), unique=True)
    account: Mapped[str] = mapped_column(String(42), index=True)
    amount: Mapped[int] = mapped_column(UInt256)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    t: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    epoch_number: Mapped[int | None] = mapped_column(
        ForeignKey("reward_epochs.number"), nullable=True, index=True
    )


class RewardEpoch(Base):
    """A closed epoch: its Merkle root of cumulative amounts and the transaction publishing it."""

    __tablename__ = "reward_epochs"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    root: Mapped[str] = mapped_column(String(66))
    total: Mapped[int] = mapped_column(UInt256)
    """Sum of every account's cumulative amount in this epoch's tree."""
    accounts: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=STATE_PENDING, index=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    raw_tx: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The signed transaction, kept so a restart re-sends the same one (same nonce)."""
    tx_nonce: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tx_block: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    superseded: Mapped[bool] = mapped_column(default=False)
    """Confirmed without its own transaction: a later epoch reached the chain first."""


class RewardEntry(Base):
    """An account's cumulative amount in one epoch's tree (what its leaf commits to)."""

    __tablename__ = "reward_entries"

    epoch_number: Mapped[int] = mapped_column(ForeignKey("reward_epochs.number"), primary_key=True)
    account: Mapped[str] = mapped_column(String(42), primary_key=True)
    cumulative_amount: Mapped[int] = mapped_column(UInt256)
