"""Response bodies of the live feed (``/api/feed``) and the contributor page
(``/api/contributors/{address}``); the wire shapes of :mod:`mergenet.coordinator.feed` and
:mod:`mergenet.coordinator.contributors`, kept beside :mod:`.schemas` with its invariants:
ISO timestamps as the read side writes them, amounts as exact decimal strings, ``X | None``
exactly where the read side can answer ``null``.
"""

from __future__ import annotations

from pydantic import Field

from mergenet.coordinator.api.schemas import Schema


class Band(Schema):
    """An accuracy with its 95 % band (Agresti–Coull per task) and the rows behind it."""

    low: float | None
    high: float | None
    rows: int


class FeedPoint(Band):
    id: int = Field(description="evaluation id (the stream cursor's first part)")
    at: str | None
    version: str = Field(description="the version measured (the current core, or the base)")
    macro: float | None = Field(description="macro accuracy (acc_choice) on this point's rows")
    tasks: dict[str, float]


class VersionLevel(Band):
    hash: str
    at: str | None
    is_base: bool
    macro: float | None = Field(description="macro accuracy over all its feed rows")
    points: int


class TaskStat(Band):
    acc: float


class TaskBars(Schema):
    base: TaskStat | None
    current: TaskStat | None


class FeedTasks(Schema):
    metric: str
    base: str | None
    current: str | None
    tasks: dict[str, TaskBars]
    base_rows: int = 0
    current_rows: int = 0


class Feed(Schema):
    points: list[FeedPoint] = Field(description="the newest feed points, oldest first")
    levels: list[VersionLevel] = Field(description="each version's accumulated feed level")
    tasks: FeedTasks


class Amount(Schema):
    base_units: str = Field(description="exact amount in base units (decimal string)")
    tokens: str = Field(description="exact amount in tokens (decimal string)")


class TaskEffect(Schema):
    loss_drop: float | None = Field(description="relative answer-loss reduction")
    accuracy_change: float | None


class Impact(Schema):
    impact: float | None = Field(description="ΔPerformance / ΔParameters × Coverage")
    delta_performance: float = Field(description="mean relative loss drop on moved tasks")
    delta_parameters: float | None = Field(description="relative norm ‖δ‖/‖θ‖")
    coverage: float = Field(description="share of tasks whose answer loss fell ≥ min_task_gain")
    tasks_moved: list[str]
    min_task_gain: float
    tasks: dict[str, TaskEffect]


class MergedIn(Schema):
    hash: str
    at: str | None
    weight: float
    strategy: str | None
    gain: float | None = Field(description="the version's gain G vs its parent version")


class ContributorContribution(Schema):
    sha256: str
    created_at: str | None
    status: str
    parent_hash: str
    scored_on: str | None
    score: float | None
    gain: float | None = Field(description="G of current + δ (weight 1) vs the version scored on")
    gain_relative_to: str
    in_pool: bool
    relative_norm: float | None
    impact: Impact | None
    versions: list[MergedIn]
    attribution: list[dict[str, object]] = Field(description="leave-one-out marginals, if any")
    reward: Amount | None
    reason: str | None = Field(description="why it earned nothing; null when it earned")


class ContributorRewards(Schema):
    accrued: Amount | None
    published: Amount | None
    claimed: Amount | None = Field(description="null without a chain to ask")


class Contributor(Schema):
    address: str
    contributions: list[ContributorContribution]
    merged: int
    rewards: ContributorRewards
