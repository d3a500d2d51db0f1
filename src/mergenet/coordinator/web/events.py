"""Server-sent events over the database: poll for rows newer than the last ids sent.

Polling the database (not an in-process hook) means every coordinator process, and a page
connected to any of them, sees rows written by any writer — the loop thread, a Celery result,
a test — and a reconnecting client resumes from ``Last-Event-ID`` without gaps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from mergenet.coordinator import leaderboard

MIN_INTERVAL, MAX_INTERVAL = 0.2, 10.0
"""Bounds on the poll interval: fast enough to feel live, never a busy loop."""
HEARTBEAT_SECONDS = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""


@dataclass
class Cursor:
    """The newest evaluation and version ids a client has seen."""

    evaluation: int = 0
    version: int = 0

    def token(self) -> str:
        return f"{self.evaluation}:{self.version}"

    @classmethod
    def parse(cls, token: str | None) -> Cursor | None:
        """``"<eval>:<version>"`` (our ``id:`` field) or None when absent or malformed."""
        if not token:
            return None
        try:
            e, v = token.split(":")
            return cls(max(0, int(e)), max(0, int(v)))
        except ValueError:
            return None


def poll(factory: sessionmaker[Session], cursor: Cursor) -> list[tuple[str, Any]]:
    """New rows since ``cursor`` as (event name, payload); advances ``cursor``."""
    with factory() as s:
        evaluations = leaderboard.score_points(s, cursor.evaluation, limit=500)
        versions = leaderboard.version_marks(s, cursor.version)
    events: list[tuple[str, Any]] = []
    if evaluations:
        cursor.evaluation = evaluations[-1]["id"]
        events.append(("evaluations", evaluations))
    if versions:
        cursor.version = versions[-1]["id"]
        events.append(("versions", versions))
    return events


def frame(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def stream(
    factory: sessionmaker[Session],
    cursor: Cursor,
    interval: float,
    disconnected: Callable[[], Any],
) -> AsyncIterator[str]:
    """Yield SSE frames until the client goes away. The DB read runs in a worker thread so
    the event loop (and every other request) never waits on it."""
    interval = min(MAX_INTERVAL, max(MIN_INTERVAL, interval))
    yield f"retry: {int(interval * 1000) + 500}\n"
    yield frame("hello", {"evaluation": cursor.evaluation, "version": cursor.version})
    idle = 0.0
    while not await disconnected():
        events = await run_in_threadpool(poll, factory, cursor)
        for name, payload in events:
            yield frame(name, payload, cursor.token())
        if events:
            idle = 0.0
        elif idle >= HEARTBEAT_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(interval)
        idle += interval
