"""``CeleryEvaluationPool``: the coordinator's ``EvaluationPool`` over Celery workers.

Tasks go to the workers of ``mergenet.workers.celery_app`` as JSON (a recipe and a
sample spec, never weights). Each task's Celery id is derived from its key and content, so
the result backend holds at most one result per (candidate, sample): a task delivered twice
(its first worker died after starting it) still yields one outcome, and ``poll`` hands each
key back once. Pass an instance as ``Coordinator(..., pool=...)`` to scale out, or
:func:`celery_pool_factory` as ``pool_factory`` (what ``mergenet coordinator up --pool celery``
does): its workers fetch artifacts from the coordinator over HTTP by content hash
(``mergenet worker``), so they need no shared disk.

Workers are untrusted: an outcome is always returned under the key this pool dispatched,
never the one a worker reports. :meth:`CeleryEvaluationPool.poll_received` hands back what
each worker sent, unread, with the task it answers, for the coordinator to authenticate and
check (``mergenet.coordinator.trust``); :meth:`CeleryEvaluationPool.poll` reads it as is.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from celery import Celery
from celery.result import AsyncResult

from mergenet.protocol.evaluation import EvalOutcome, EvalTask, WorkerEnv
from mergenet.workers.celery_app import TASK_NAME, make_app
from mergenet.workers.celery_app import app as default_app


class WorkerEnvSource(Protocol):
    """What ``celery_pool_factory`` needs of the coordinator (workers never import it)."""

    def worker_env(self, coordinator_url: str | None = None) -> WorkerEnv: ...


def task_payload(task: EvalTask) -> dict[str, Any]:
    return task.to_json()


def task_id(task: EvalTask) -> str:
    """The Celery id: the caller's key plus a digest of what is evaluated."""
    blob = json.dumps(task_payload(task), sort_keys=True, separators=(",", ":")).encode()
    return f"{task.key}:{hashlib.sha256(blob).hexdigest()[:16]}"


@dataclass(frozen=True)
class Received:
    """What came back for one dispatched task: the worker's payload as sent (unchecked), or
    why the task failed on the worker (``failure``; then ``payload`` is None)."""

    task: EvalTask
    payload: Any = None
    failure: str | None = None


class CeleryEvaluationPool:
    """Submit to Celery, collect whichever tasks finish first; no generation barrier."""

    def __init__(self, env: WorkerEnv, *, app: Celery | None = None, capacity: int = 2):
        self.env = env
        self.app = app or default_app
        self._capacity = capacity
        self._pending: dict[str, tuple[EvalTask, AsyncResult]] = {}

    @property
    def capacity(self) -> int:
        """Tasks the loop keeps in flight: about the number of worker slots."""
        return self._capacity

    def submit(self, task: EvalTask) -> None:
        tid = task_id(task)
        if tid in self._pending:
            return
        result = self.app.send_task(
            TASK_NAME, args=[self.env.to_json(), task_payload(task)], task_id=tid
        )
        self._pending[tid] = (task, result)

    def in_flight(self) -> int:
        return len(self._pending)

    def pending(self) -> dict[str, EvalTask]:
        """Celery task id → task, for tasks not yet collected."""
        return {tid: task for tid, (task, _) in self._pending.items()}

    def poll_received(self, timeout: float) -> list[Received]:
        """Whatever finished within ``timeout``, each task once, payloads unread."""
        deadline = time.monotonic() + timeout
        while True:
            done = [tid for tid, (_, r) in self._pending.items() if r.ready()]
            if done or time.monotonic() >= deadline:
                return [self._received(tid) for tid in done]
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _received(self, tid: str) -> Received:
        task, result = self._pending.pop(tid)
        if result.successful():
            return Received(task, payload=result.result)
        return Received(task, failure=f"worker failed: {result.result!r}")

    def poll(self, timeout: float) -> list[EvalOutcome]:
        """Outcomes read as sent (no authentication), under the dispatched key."""
        return [_unchecked(r) for r in self.poll_received(timeout)]

    def close(self) -> None:
        """Forget pending tasks (they finish on the workers; their results expire)."""
        self._pending.clear()


def _unchecked(r: Received) -> EvalOutcome:
    key = r.task.key
    if r.failure is not None:
        return EvalOutcome(key=key, error=r.failure)
    data = r.payload.get("outcome") if isinstance(r.payload, dict) else None
    data = data if isinstance(data, dict) else r.payload
    try:
        out = EvalOutcome.from_json(data)
    except TypeError as exc:
        return EvalOutcome(key=key, error=f"unreadable worker result: {exc}")
    if out.key != key:
        return EvalOutcome(key=key, error=f"worker answered key {out.key!r}, not {key!r}")
    return out


def celery_pool_factory(
    coordinator_url: str, redis_url: str, capacity: int = 2
) -> Callable[[WorkerEnvSource], CeleryEvaluationPool]:
    """A ``Coordinator(pool_factory=...)`` that sends tasks to Celery workers over
    ``redis_url``, telling them to fetch artifacts from ``coordinator_url``."""

    def build(coord: WorkerEnvSource) -> CeleryEvaluationPool:
        env = coord.worker_env(coordinator_url)
        return CeleryEvaluationPool(env, app=make_app(redis_url), capacity=capacity)

    return build
