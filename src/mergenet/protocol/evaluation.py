"""Evaluation tasks and outcomes as they travel: (recipe, sample spec) in, measurements out.

A task names its parent version by hash and its contributions by sha256; a worker rebuilds the
candidate from artifacts it resolves by content hash, scores it and its parent on the same
seeded sample of a named row set, and returns both results plus ‖θ_f − θ_b‖/‖θ_b‖. Weights
never travel, so one interface fits the in-process pool, a Celery worker or a Petals peer.

The JSON form (``to_json``/``from_json``) is what Celery carries; it is plain ``asdict`` of
the dataclasses, so a task's Celery id can be a digest of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from mergenet.protocol.results import EvalResult


@dataclass(frozen=True)
class SampleSpec:
    """Which rows: ``n`` per task (and min(n², held) loss rows) of row set ``rows``, seeded."""

    rows: str
    n: int
    seed: int


@dataclass(frozen=True)
class EvalTask:
    key: str
    """The caller's id for this task (e.g. ``"c17:selection"``)."""
    recipe: dict[str, Any]
    sample: SampleSpec

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "recipe": self.recipe, "sample": asdict(self.sample)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalTask:
        return cls(key=data["key"], recipe=data["recipe"], sample=SampleSpec(**data["sample"]))


@dataclass
class EvalOutcome:
    key: str
    result: dict[str, Any] | None = None
    parent_result: dict[str, Any] | None = None
    relative_distance: float = 0.0
    seconds: float = 0.0
    error: str | None = None

    def candidate(self) -> EvalResult:
        assert self.result is not None
        return EvalResult.from_dict(self.result)

    def parent(self) -> EvalResult:
        assert self.parent_result is not None
        return EvalResult.from_dict(self.parent_result)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalOutcome:
        return cls(**data)


@dataclass(frozen=True)
class WorkerEnv:
    """What a worker needs to resolve recipes and samples: where artifacts are, no state.

    Two modes. Shared disk (the in-process pool): ``store_root`` is the coordinator's artifact
    store and ``row_sets`` maps row-set names to JSONL paths. HTTP (workers elsewhere):
    ``coordinator_url`` is where the coordinator serves artifacts by content hash and
    ``row_set_sha256`` maps row-set names to the sha256 of their JSONL; a worker started with
    its own coordinator URL (``mergenet worker --coordinator``) uses that one instead, since
    it knows best how it reaches the coordinator.
    """

    store_root: str = ""
    row_sets: dict[str, str] = field(default_factory=dict)
    """Row-set name → Dharma JSONL path (e.g. ``{"dev": …, "heldout": …}``)."""
    torch_threads: int = 1
    coordinator_url: str | None = None
    row_set_sha256: dict[str, str] = field(default_factory=dict)
    """Row-set name → sha256 of its JSONL (HTTP mode)."""

    @property
    def over_http(self) -> bool:
        return self.coordinator_url is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerEnv:
        return cls(**data)


class EvaluationPool(Protocol):
    """Asynchronous evaluation: submit tasks, collect whichever finish first."""

    @property
    def capacity(self) -> int: ...

    def submit(self, task: EvalTask) -> None: ...

    def in_flight(self) -> int: ...

    def poll(self, timeout: float) -> list[EvalOutcome]: ...

    def close(self) -> None: ...
