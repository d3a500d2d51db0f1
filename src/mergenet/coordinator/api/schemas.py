"""The public response bodies of the coordinator's API, as pydantic models.

Every JSON route declares one of these as its ``response_model``, so ``/openapi.json`` describes
each body a client receives. The shapes are the wire contract the node client, the live page
and the tests rely on: the same keys and value types the read side (:mod:`..queries`,
:mod:`..leaderboard`, the rewards service) produces. Invariants kept here:

* timestamps are ISO 8601 strings exactly as the read side formats them (never re-parsed);
* token amounts are decimal strings (base units exceed JavaScript's 2**53);
* a field is ``X | None`` exactly where the read side can answer ``null``.

Models are read-only views: nothing here queries or writes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Schema(BaseModel):
    """Base of the response models: frozen views."""

    model_config = ConfigDict(frozen=True)


class Problem(Schema):
    """Every rejection: a 4xx (or 503) whose ``detail`` says what to fix."""

    detail: str = Field(description="what went wrong and what to fix")


class Invalid(Schema):
    """A 422: ``detail`` is the domain's message, or FastAPI's list of bad request fields."""

    detail: str | list[dict[str, Any]] = Field(
        description="what to fix; a list of {loc, msg, type} when request fields failed"
    )


class Health(Schema):
    status: str


# -- contributions ---------------------------------------------------------------------------
class RewardUnits(Schema):
    base_units: str = Field(description="reward in the token's base units (decimal string)")


class ContributionStatus(Schema):
    """A contribution as recorded: status, score, reward."""

    sha256: str
    address: str = Field(description="checksummed contributor address")
    parent_hash: str = Field(description="the version the delta was made on")
    nonce: int
    status: str = Field(description="received, scoring, scored, rejected, …")
    score: float | None = Field(description="S of current + δ; null until scored")
    gain: float | None = Field(description="the gain G over the current version")
    in_pool: bool = Field(description="whether the loop may merge it")
    relative_norm: float = Field(description="‖δ‖ / ‖θ_parent‖")
    size_bytes: int
    reward: RewardUnits | None
    created_at: str | None


class ContributionDetail(ContributionStatus):
    in_versions: list[str] = Field(description="accepted versions whose recipe merged it")


# -- versions --------------------------------------------------------------------------------
class Version(Schema):
    hash: str = Field(description="canonical state-dict sha256")
    parent_hash: str | None
    recipe_hash: str | None = Field(description="null for the base model")
    score: float | None
    gain: float | None
    weights_path: str
    evaluations_at_accept: int
    created_at: str | None


# -- the loop --------------------------------------------------------------------------------
class HistoryEvaluation(Schema):
    n: int = Field(description="1-based position in the history")
    at: str | None
    candidate: int
    purpose: str = Field(description="selection, confirmation or contribution")
    strategy: str
    kind: str
    parent_hash: str
    score: float
    baseline: float
    gain: float
    worker: str | None = Field(
        default=None, description="who computed it, e.g. petals:<candidate prefix> (the swarm)"
    )


class History(Schema):
    evaluations: list[HistoryEvaluation]
    versions: list[Version]
    contributions: list[ContributionStatus]


class StrategyStep(Schema):
    step: int
    candidate: int | None = Field(description="the candidate whose result caused the update")
    weights: dict[str, float]


class Strategies(Schema):
    current: dict[str, float] = Field(description="H(s) now: strategy → probability")
    history: list[StrategyStep]


# -- rewards and the chain -------------------------------------------------------------------
class Amount(Schema):
    base_units: str = Field(description="decimal string of base units")
    tokens: str = Field(description="the same amount in tokens, for people")


class RewardStatus(Schema):
    address: str
    accrued: Amount | None
    published: Amount | None
    claimed: Amount | None = Field(description="null when the chain was not asked")
    claimable: Amount | None
    epoch: int | None
    root: str | None = Field(description="the newest published Merkle root")
    cumulative_amount: str = Field(description="the leaf amount the proof is for")
    proof: list[str]


class SigningDomain(Schema):
    """The EIP-712 domain a node signs its uploads under (``mergenet.protocol.signing``)."""

    name: str
    version: str
    chainId: int
    verifyingContract: str = Field(
        description="the distributor contract; the zero address when run without a chain"
    )
    salt: str = Field(description="this coordinator's network id (32 bytes, 0x-hex)")


class Info(Schema):
    chain_id: int
    current_version: str
    rewards_on_chain: bool
    signing_domain: SigningDomain


class ChainInfo(Schema):
    """Keys other than ``block`` are absent when no deployment file is found."""

    rpc_url: str | None = None
    chain_id: int | None = None
    token: str | None = None
    distributor: str | None = None
    registry: str | None = None
    seeds: str | None = Field(None, description="EpochSeeds: row-epoch commit/reveal")
    bond: str | None = Field(None, description="UploadBond: deposit here before uploading")
    bond_wei: str | None = Field(None, description="bond per upload in wei (0: none asked)")
    block: int = Field(description="first block of the deployment: event scans start here")


# -- the live page ---------------------------------------------------------------------------
class ScorePoint(Schema):
    id: int = Field(description="evaluation id (the stream cursor's first part)")
    at: str | None
    purpose: str
    candidate: int
    strategy: str
    kind: str
    score: float
    baseline: float
    gain: float
    dharma: float | None = Field(description="macro Dharma accuracy of the candidate")
    parent_dharma: float | None


class MarkContribution(Schema):
    sha256: str | None
    weight: float
    address: str | None


class VersionMark(Schema):
    id: int = Field(description="version id (the stream cursor's second part)")
    hash: str
    parent_hash: str | None
    at: str | None
    score: float | None
    gain: float | None
    dharma: float | None
    evaluation: int | None = Field(description="the confirmation that accepted it")
    strategy: str | None
    params: dict[str, Any]
    contributions: list[MarkContribution]
    is_base: bool


class Live(Schema):
    points: list[ScorePoint]
    versions: list[VersionMark]
    cursor: str = Field(description="'<evaluation id>:<version id>' for /api/events?after=")


class LeaderboardRow(Schema):
    address: str
    contributions: int
    scored: int
    merged: int = Field(description="contributions merged into at least one version")
    best_score: float | None
    best_gain: float | None = Field(
        description="best G of current + δ (weight 1) vs the version it was scored on"
    )
    best_impact: float | None = Field(
        None, description="best ΔPerformance/ΔParameters × Coverage (coordinator.impact)"
    )
    accrued: Amount
    claimed: Amount


class TaskPair(Schema):
    base: float | None
    current: float | None


class TaskComparison(Schema):
    metric: str
    base: str | None
    current: str | None
    tasks: dict[str, TaskPair]
