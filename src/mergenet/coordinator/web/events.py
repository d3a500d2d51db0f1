"""The live stream's service: poll the database for rows newer than the last ids sent, as
server-sent events (framing, heartbeat and disconnects are ``sse-starlette``'s).

Polling the database (not an in-process hook) means every coordinator process, and a page
connected to any of them, sees rows written by any writer — the loop thread, a Celery result,
a test — and a reconnecting client resumes from ``Last-Event-ID`` without gaps.

Events, in order: ``hello`` once (data ``{"evaluation": id, "version": id}``, the starting
cursor, and the ``retry`` the browser should wait before reconnecting), then ``evaluations``
(a list of score points) and ``versions`` (a list of version marks) whenever there are new
rows, each with ``id: "<evaluation id>:<version id>"``, the cursor after that poll.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import ServerSentEvent
from starlette.concurrency import run_in_threadpool

from mergenet.coordinator import leaderboard

MIN_INTERVAL, MAX_INTERVAL = 0.2, 10.0
"""Bounds on the poll interval: fast enough to feel live, never a busy loop."""
SEP = "\n"
"""Line ends of the frames (the stream used ``\n`` before sse-starlette; both are valid SSE)."""
HEARTBEAT_SECONDS = 15.0
"""A comment line this often keeps proxies from closing an idle stream (sse-starlette's ping)."""


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


def snapshot(s: Session) -> dict[str, Any]:
    """What a page draws when it opens, and the cursor to stream from afterwards.

    The cursor is what was sent, not a separate max(id) read: under READ COMMITTED a row
    committed between two reads would otherwise be sent twice or never.
    """
    points = leaderboard.recent_points(s)
    versions = leaderboard.version_marks(s, 0)
    cursor = Cursor(points[-1]["id"] if points else 0, versions[-1]["id"] if versions else 0)
    return {"points": points, "versions": versions, "cursor": cursor.token()}


def latest(factory: sessionmaker[Session]) -> Cursor:
    """Where a stream starts when the client names no cursor: after the newest rows."""
    with factory() as s:
        ids = leaderboard.latest_ids(s)
    return Cursor(ids["evaluation"], ids["version"])


async def start(
    factory: sessionmaker[Session], last_event_id: str | None, after: str | None
) -> Cursor:
    """The cursor to resume from: ``Last-Event-ID`` (a reconnect), else ``?after=``, else now."""
    cursor = Cursor.parse(last_event_id) or Cursor.parse(after)
    return cursor if cursor is not None else await run_in_threadpool(latest, factory)


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


def _data(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def clamp(interval: float) -> float:
    return min(MAX_INTERVAL, max(MIN_INTERVAL, interval))


async def stream(
    factory: sessionmaker[Session], cursor: Cursor, interval: float
) -> AsyncIterator[ServerSentEvent]:
    """Events until the client goes away (sse-starlette then cancels this generator). The DB
    read runs in a worker thread so the event loop (and every other request) never waits."""
    interval = clamp(interval)
    yield ServerSentEvent(
        event="hello",
        data=_data({"evaluation": cursor.evaluation, "version": cursor.version}),
        retry=int(interval * 1000) + 500,
        sep=SEP,
    )
    while True:
        for name, payload in await run_in_threadpool(poll, factory, cursor):
            yield ServerSentEvent(event=name, data=_data(payload), id=cursor.token(), sep=SEP)
        await asyncio.sleep(interval)
