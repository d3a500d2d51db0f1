"""``CeleryEvaluationPool``: the coordinator's ``EvaluationPool`` over Celery workers.

Tasks go to the workers of ``mergenet.workers.celery_app`` as JSON (a recipe and a
sample spec, never weights). Each task's Celery id is derived from its key and content, so
the result backend holds at most one result per (candidate, sample): a task delivered twice
(its first worker died after starting it) still yields one outcome, and ``poll`` hands each
key back once. Pass an instance as ``Coordinator(..., pool=...)`` to scale out, or
:func:`celery_pool_factory` as ``pool_factory`` (what ``mergenet coordinator up --pool celery``
does): its workers fetch artifacts from the coordinator over HTTP by content hash
(``mergenet worker``), so they need no shared disk.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
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


class CeleryEvaluationPool:
    """Submit to Celery, collect whichever tasks finish first; no generation barrier."""

    def __init__(self, env: WorkerEnv, *, app: Celery | None = None, capacity: int = 2):
        self.env = env
        self.app = app or default_app
        self._capacity = capacity
        self._pending: dict[str, tuple[str, AsyncResult]] = {}

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
        self._pending[tid] = (task.key, result)

    def in_flight(self) -> int:
        return len(self._pending)

    def poll(self, timeout: float) -> list[EvalOutcome]:
        deadline = time.monotonic() + timeout
        while True:
            done = [tid for tid, (_, r) in self._pending.items() if r.ready()]
            if done or time.monotonic() >= deadline:
                return [self._outcome(tid) for tid in done]
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _outcome(self, tid: str) -> EvalOutcome:
        key, result = self._pending.pop(tid)
        if result.successful():
            return EvalOutcome.from_json(result.result)
        return EvalOutcome(key=key, error=f"worker failed: {result.result!r}")

    def close(self) -> None:
        """Forget pending tasks (they finish on the workers; their results expire)."""
        self._pending.clear()


def celery_pool_factory(
    coordinator_url: str, redis_url: str, capacity: int = 2
) -> Callable[[WorkerEnvSource], CeleryEvaluationPool]:
    """A ``Coordinator(pool_factory=...)`` that sends tasks to Celery workers over
    ``redis_url``, telling them to fetch artifacts from ``coordinator_url``."""

    def build(coord: WorkerEnvSource) -> CeleryEvaluationPool:
        env = coord.worker_env(coordinator_url)
        return CeleryEvaluationPool(env, app=make_app(redis_url), capacity=capacity)

    return build
