"""The coordinator's tables: contributors, contributions, nonces, versions, candidates,
evaluations, strategy-weight history, row epochs and the loop's small key/value state.

Everything the loop knows lives here, so a restart after kill -9 resumes from the database:
a candidate is a recipe (O(1) to store, rebuilt bit for bit), an evaluation is its measured
result, and a version row is written only after its weights are complete on disk.
JSON columns hold recipes and evaluation results (portable across SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from mergenet.coordinator.status import CandidateStatus, ContributionStatus
from mergenet.db import Base, utcnow

# the statuses under the names the code has always used (StrEnum members: plain strings in rows)
RECEIVED, SCORED = ContributionStatus.RECEIVED, ContributionStatus.SCORED
QUEUED, DONE, FAILED = CandidateStatus.QUEUED, CandidateStatus.DONE, CandidateStatus.FAILED
CONFIRMING, ACCEPTED = CandidateStatus.CONFIRMING, CandidateStatus.ACCEPTED
REJECTED = CandidateStatus.REJECTED


class Contributor(Base):
    __tablename__ = "contributors"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Nonce(Base):
    """A used (address, nonce) pair: single-use, so a signed upload cannot be replayed."""

    __tablename__ = "nonces"

    address: Mapped[str] = mapped_column(ForeignKey("contributors.address"), primary_key=True)
    nonce: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Version(Base):
    """An accepted core model: its weights hash, lineage, recipe and scores."""

    __tablename__ = "versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    """Canonical state-dict sha256 (``deltas.hashing``), what recipes name as parent."""
    parent_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recipe: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    recipe_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    candidate_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    weights_path: Mapped[str] = mapped_column(Text)
    """HF folder relative to the artifact store root."""
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    """S against the parent on the confirmation sample."""
    gain: Mapped[float | None] = mapped_column(Float, nullable=True)
    """S − S_0 on the confirmation sample."""
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    selection_seed: Mapped[int] = mapped_column(BigInteger)
    """The sample every candidate built on this version is scored on."""
    evaluations_at_accept: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Contribution(Base):
    __tablename__ = "contributions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(ForeignKey("contributors.address"), index=True)
    parent_hash: Mapped[str] = mapped_column(ForeignKey("versions.hash"))
    nonce: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="dense")
    """``dense`` (safetensors delta) or ``lora`` (PEFT adapter folder, stored as a tar)."""
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    relative_norm: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default=RECEIVED, index=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    gain: Mapped[float | None] = mapped_column(Float, nullable=True)
    """S − S_0: the contribution's score relative to the no-change baseline."""
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    scored_on: Mapped[str | None] = mapped_column(String(64), nullable=True)
    in_pool: Mapped[bool] = mapped_column(default=False)
    reward: Mapped[str | None] = mapped_column(String(78), nullable=True)
    """Accrued reward in token base units (decimal string), when a chain is configured."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("address", "nonce", name="uq_contribution_nonce"),)


class Candidate(Base):
    """One merge recipe the loop proposed, built on ``parent_hash``."""

    __tablename__ = "candidates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    parent_hash: Mapped[str] = mapped_column(ForeignKey("versions.hash"), index=True)
    strategy: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """A :class:`~mergenet.coordinator.status.Kind`."""
    recipe: Mapped[dict[str, Any]] = mapped_column(JSON)
    recipe_hash: Mapped[str] = mapped_column(String(64), index=True)
    contribution_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """For a contribution's scoring candidate: which contribution it scores."""
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    sample_seed: Mapped[int] = mapped_column(BigInteger)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    gain: Mapped[float | None] = mapped_column(Float, nullable=True)
    confirm_gain: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Evaluation(Base):
    """A finished evaluation: candidate vs its parent on one sample."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    """A :class:`~mergenet.coordinator.status.Purpose`."""
    sample_seed: Mapped[int] = mapped_column(BigInteger)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    parent_result: Mapped[dict[str, Any]] = mapped_column(JSON)
    relative_distance: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float] = mapped_column(Float)
    """S_0, the no-change score on the same rows."""
    gain: Mapped[float] = mapped_column(Float)
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSON)
    seconds: Mapped[float] = mapped_column(Float)
    row_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The :class:`RowEpoch` whose secret drew the rows (None: before row epochs)."""
    rows_label: Mapped[str | None] = mapped_column(String(512), nullable=True)
    """What regenerates the rows with that secret and ``sample_seed``
    (:mod:`mergenet.coordinator.decision_rows`): ``gen:<purpose>:<per_task>:<tasks>`` or
    ``pool:<start>:<per_task>``."""
    worker: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Who computed it, as the pool stamped the outcome (``EvalOutcome.worker``): e.g.
    ``petals:<candidate prefix>`` for the swarm (None: a pool that does not stamp)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StrategyWeight(Base):
    """H(s) after each update (one row per strategy per step; the newest step is current)."""

    __tablename__ = "strategy_weights"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    step: Mapped[int] = mapped_column(Integer, index=True)
    strategy: Mapped[str] = mapped_column(String(64))
    weight: Mapped[float] = mapped_column(Float)
    cause_candidate_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("step", "strategy", name="uq_strategy_step"),)


class LoopState(Base):
    """Small named counters and values of the loop (e.g. the proposal counter)."""

    __tablename__ = "loop_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RowEpoch(Base):
    """One period of scoring rows: a private 32-byte secret, committed first, revealed last.

    While the epoch is open every scoring decision draws its rows from ``secret``
    (:mod:`mergenet.ecosystem.fresh_rows`), so no participant can know or train on them; only
    ``commitment`` (sha256 of the secret) may be published. When the epoch closes the secret
    is revealed (``revealed_at`` set) and every evaluation of the epoch can be re-run from
    its recipe, seed and ``rows_label``. Invariant: at most one epoch has ``revealed_at`` None
    (the open one), and it has the highest number.
    """

    __tablename__ = "row_epochs"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    commitment: Mapped[str] = mapped_column(String(64))
    """sha256 hex of the secret bytes."""
    secret: Mapped[str] = mapped_column(String(64))
    """32 random bytes as hex: private until ``revealed_at``; never logged or served before."""
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revealed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    commit_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)
    reveal_tx: Mapped[str | None] = mapped_column(String(66), nullable=True)
