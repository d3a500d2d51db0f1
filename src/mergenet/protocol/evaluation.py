"""Evaluation tasks and outcomes as they travel: (recipe, sample spec) in, measurements out.

A task names its parent version by hash and its contributions by sha256; a worker rebuilds the
candidate from artifacts it resolves by content hash, scores it and its parent on the same
seeded sample of the rows the task carries, and returns both results plus ‖θ_f − θ_b‖/‖θ_b‖.
Weights never travel, so one interface fits the in-process pool, a Celery worker or a Petals
peer.

Decision rows travel *inside* the task (``SampleSpec.data``): the loop draws fresh private
rows per decision (:mod:`mergenet.coordinator.decision_rows`), so no route serves them and a
worker needs nothing but the task. The default world's 10 tasks x 64 rows are 81 KB of JSON
per task (measured; the digest that keys worker caches costs 0.6 ms). A named row set
(``data`` empty) is read from the worker's own disk (``WorkerEnv.row_sets``; benchmarks and
local tools only); it is never downloaded.

The JSON form (``to_json``/``from_json``) is what Celery carries; it is plain ``asdict`` of
the dataclasses, so a task's Celery id can be a digest of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from mergenet.protocol.results import EvalResult

Row = dict[str, Any]


@dataclass(frozen=True)
class SampleSpec:
    """Which rows: ``n`` per task (and min(n², held) loss rows) of ``data``, seeded.

    ``data`` holds the Dharma rows themselves (a tuple, also after a JSON round trip) and
    ``rows`` names them: the recorded ``rows_label`` of fresh rows, or, with ``data`` empty,
    a row set on the worker's own disk. Rows are dicts, so a spec is not hashable: caches
    key on :meth:`key` (n, seed and a digest of the rows).
    """

    rows: str
    n: int
    seed: int
    data: tuple[Row, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.data, tuple):
            object.__setattr__(self, "data", tuple(self.data))

    @property
    def digest(self) -> str:
        """sha256 of the rows' canonical JSON ("" without inline rows)."""
        if not self.data:
            return ""
        blob = json.dumps(list(self.data), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def key(self) -> tuple[str, int, int, str]:
        """Hashable identity of the sample: (name, n, seed, digest of the rows)."""
        return (self.rows, self.n, self.seed, self.digest)


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
    worker: str | None = None
    """Who computed it (recorded with the evaluation): ``petals:<candidate prefix>`` from the
    swarm pool; None where a pool does not say."""

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
    """What a worker needs to resolve recipes: where artifacts are, no state.

    Two modes. Shared disk (the in-process pool): ``store_root`` is the coordinator's artifact
    store. HTTP (workers elsewhere): ``coordinator_url`` is where the coordinator serves
    artifacts (versions, deltas) by content hash; a worker started with its own coordinator
    URL (``mergenet worker --coordinator``) uses that one instead, since it knows best how it
    reaches the coordinator. Rows are never fetched: decision rows come inside each task.
    """

    store_root: str = ""
    row_sets: dict[str, str] = field(default_factory=dict)
    """Row-set name → Dharma JSONL path on this machine, for tasks that carry no rows
    (benchmarks); the coordinator's loop never uses it."""
    torch_threads: int = 1
    coordinator_url: str | None = None

    @property
    def over_http(self) -> bool:
        return self.coordinator_url is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerEnv:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class EvaluationPool(Protocol):
    """Asynchronous evaluation: submit tasks, collect whichever finish first."""

    @property
    def capacity(self) -> int: ...

    def submit(self, task: EvalTask) -> None: ...

    def in_flight(self) -> int: ...

    def poll(self, timeout: float) -> list[EvalOutcome]: ...

    def close(self) -> None: ...
