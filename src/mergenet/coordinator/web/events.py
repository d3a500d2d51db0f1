"""The live stream's service: poll the database for rows newer than the last ids sent, as
server-sent events (framing, heartbeat and disconnects are ``sse-starlette``'s).

Polling the database (not an in-process hook) means every coordinator process, and a page
connected to any of them, sees rows written by any writer — the loop thread, a Celery result,
a test — and a reconnecting client resumes from ``Last-Event-ID`` without gaps.

One poller per process and event loop (:class:`Feed`) reads the new rows for every viewer and
keeps the recent ones in memory; a viewer is served from there, and reads the database itself
only to catch up from a cursor older than that memory. Before this, each viewer polled the
database every second on its own: 200 viewers made 200 queries a second, exhausted the
connection pool and answered 500s to ordinary routes (benchmarks/load.py).

Events, in order: ``hello`` once (data ``{"evaluation": id, "version": id}``, the starting
cursor, and the ``retry`` the browser should wait before reconnecting), then ``evaluations``
(a list of score points) and ``versions`` (a list of version marks) whenever there are new
rows, each with ``id: "<evaluation id>:<version id>"``, the cursor after that poll. The core's
live feed (:mod:`mergenet.coordinator.feed`) travels in ``evaluations`` as points of purpose
``feed`` (they are evaluation rows), so a page learns of a new feed point without a second
poller and re-reads ``/api/feed`` for the levels and bars.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections import deque
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


log = logging.getLogger("mergenet.coordinator.events")

FEED_INTERVAL = 0.5
"""Seconds between the shared poller's reads (one query pair for all viewers)."""
FEED_KEEP = 2000
"""Recent evaluation points and version marks kept in memory for viewers to resume from."""


class Feed:
    """The one poller of a process (per event loop and session factory) for every viewer.

    Invariant: ``evaluations``/``versions`` hold every row with an id above ``floor`` up to
    ``head``, in id order, so a viewer whose cursor is at or above ``floor`` gets exactly the
    rows it has not seen from memory. The poller stops when the last viewer leaves and starts
    afresh (floor = head = the newest rows) with the next one.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.viewers = 0
        self.head = Cursor()
        self.floor = Cursor()
        self.evaluations: deque[dict[str, Any]] = deque()
        self.versions: deque[dict[str, Any]] = deque()
        self._task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        self.head = await run_in_threadpool(latest, self.factory)
        self.floor = Cursor(self.head.evaluation, self.head.version)
        self.evaluations.clear()
        self.versions.clear()
        while self.viewers > 0:
            try:
                for name, payload in await run_in_threadpool(poll, self.factory, self.head):
                    self._keep(
                        self.evaluations if name == "evaluations" else self.versions, payload
                    )
            except Exception as exc:  # the database restarting: keep serving, retry next round
                log.warning("live feed poll failed: %s", type(exc).__name__)
            await asyncio.sleep(FEED_INTERVAL)

    def _keep(self, rows: deque[dict[str, Any]], new: list[dict[str, Any]]) -> None:
        rows.extend(new)
        while len(rows) > FEED_KEEP:
            dropped = rows.popleft()["id"]
            if rows is self.evaluations:
                self.floor.evaluation = dropped
            else:
                self.floor.version = dropped

    def since(self, cursor: Cursor) -> list[tuple[str, Any]] | None:
        """Rows after ``cursor`` from memory (advancing it), or None when it is older than
        ``floor`` (the caller then reads the database)."""
        if cursor.evaluation < self.floor.evaluation or cursor.version < self.floor.version:
            return None
        events: list[tuple[str, Any]] = []
        evaluations = [r for r in self.evaluations if r["id"] > cursor.evaluation]
        versions = [r for r in self.versions if r["id"] > cursor.version]
        if evaluations:
            cursor.evaluation = evaluations[-1]["id"]
            events.append(("evaluations", evaluations))
        if versions:
            cursor.version = versions[-1]["id"]
            events.append(("versions", versions))
        return events


_feeds: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Feed]] = (
    weakref.WeakKeyDictionary()
)


def feed_for(factory: sessionmaker[Session]) -> Feed:
    """This event loop's feed over ``factory`` (made on first use)."""
    feeds = _feeds.setdefault(asyncio.get_running_loop(), {})
    feed = feeds.get(id(factory))
    if feed is None or feed.factory is not factory:
        feed = feeds[id(factory)] = Feed(factory)
    return feed


def _data(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


def clamp(interval: float) -> float:
    return min(MAX_INTERVAL, max(MIN_INTERVAL, interval))


async def stream(
    factory: sessionmaker[Session], cursor: Cursor, interval: float
) -> AsyncIterator[ServerSentEvent]:
    """Events until the client goes away (sse-starlette then cancels this generator). New rows
    come from the shared :class:`Feed`; only a catch-up from an old cursor reads the database
    (in a worker thread, so the event loop and every other request never wait)."""
    interval = clamp(interval)
    yield ServerSentEvent(
        event="hello",
        data=_data({"evaluation": cursor.evaluation, "version": cursor.version}),
        retry=int(interval * 1000) + 500,
        sep=SEP,
    )
    feed = feed_for(factory)
    feed.viewers += 1
    try:
        while True:
            feed.ensure_running()
            events = feed.since(cursor)
            if events is None:
                events = await run_in_threadpool(poll, factory, cursor)
            for name, payload in events:
                yield ServerSentEvent(event=name, data=_data(payload), id=cursor.token(), sep=SEP)
            await asyncio.sleep(interval)
    finally:
        feed.viewers -= 1
