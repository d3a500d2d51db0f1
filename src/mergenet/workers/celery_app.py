"""The Celery application for evaluation workers (broker and results on Redis).

Started by ``mergenet worker --coordinator URL`` (checks Redis and the coordinator first), or
by ``celery --app mergenet.workers.celery_app worker``. A task carries a recipe and a
sample spec, never weights, and runs the coordinator's own worker code
(``mergenet.workers.evaluate.run_task_here``).
Delivery is at-least-once: ``acks_late`` with ``reject_on_worker_lost`` puts a task back on
the queue when its worker dies mid-task, and one task is prefetched at a time so a slow
worker does not hoard work. Recording exactly once is the caller's part: outcomes carry the
caller's task key, so a redelivered task's second outcome is recognised and dropped.

A worker that dies as a whole (SIGKILL, lost machine) leaves its task unacknowledged in
Redis; another worker restores it after ``visibility_timeout`` seconds
(``MERGENET_CELERY_VISIBILITY_TIMEOUT``; keep it above the longest task, or a slow task is
started twice — harmless for the result, which is recorded once, but wasted work).
``CeleryEvaluationPool`` (``celery_pool``) is the coordinator-side half.

Where a worker finds artifacts is the task's ``WorkerEnv``: a folder it shares with the
coordinator (``store_root``), or the coordinator's URL, from which it fetches versions,
deltas and row sets by content hash into its own cache (``mergenet worker``,
:mod:`mergenet.workers.run` and :mod:`mergenet.workers.fetch`).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from pydantic_settings import BaseSettings, SettingsConfigDict

from mergenet.config import get_settings
from mergenet.protocol.evaluation import EvalTask, WorkerEnv
from mergenet.workers.credentials import result_for
from mergenet.workers.evaluate import run_task_here

TASK_NAME = "mergenet.evaluate"


class CelerySettings(BaseSettings):
    """Delivery knobs (``MERGENET_CELERY_<NAME>``); the broker URL is ``MERGENET_REDIS_URL``."""

    model_config = SettingsConfigDict(env_prefix="MERGENET_CELERY_", extra="ignore")

    visibility_timeout: float = 3600.0
    """Seconds before an unacknowledged task (its worker gone) is handed to another worker."""
    restore_interval: float = 10.0
    """Seconds between a worker's sweeps for such tasks."""


def make_app(redis_url: str | None = None, settings: CelerySettings | None = None) -> Celery:
    url = redis_url or get_settings().redis_url
    cs = settings or CelerySettings()
    app = Celery("mergenet", broker=url, backend=url)
    app.conf.update(
        broker_transport_options={
            "visibility_timeout": cs.visibility_timeout,
            "unacked_restore_interval": cs.restore_interval,
            "unacked_restore_throttle": 1,
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_extended=True,
        broker_connection_retry_on_startup=True,
    )
    app.task(name=TASK_NAME, bind=True, max_retries=3, default_retry_delay=5)(evaluate)
    return app


def evaluate(self: Any, env: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """Run one evaluation task (JSON in, JSON out); errors come back inside the outcome,
    which is signed over the task's key when the worker has a credential (``credentials``)."""
    t = EvalTask.from_json(task)
    return result_for(t.key, run_task_here(WorkerEnv.from_json(env), t).to_json())


app = make_app()
