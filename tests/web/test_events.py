"""The live stream's service layer without a browser: cursors, polling and SSE framing."""

from __future__ import annotations

import asyncio
from typing import Any

from mergenet.coordinator import leaderboard
from mergenet.coordinator.web import events

from .history import STRATEGIES, Recorder


def test_poll_sends_each_new_row_once_and_resumes_from_a_cursor(coordinator: Any) -> None:
    rec = Recorder(coordinator.factory)
    shas = rec.contributions(["0x" + "44" * 20])
    rec.selection(STRATEGIES[0], shas, 0.001)
    with coordinator.factory() as s:
        ids = leaderboard.latest_ids(s)
    cursor = events.Cursor(ids["evaluation"], ids["version"])
    assert events.poll(coordinator.factory, cursor) == []

    rec.accept(STRATEGIES[1], shas, 0.02)
    sent = dict(events.poll(coordinator.factory, cursor))
    assert [p["purpose"] for p in sent["evaluations"]] == ["selection", "confirmation"]
    [version] = sent["versions"]
    assert version["strategy"] == STRATEGIES[1]
    assert version["evaluation"] == sent["evaluations"][-1]["id"]  # the mark sits on it
    assert version["contributions"][0]["address"] == "0x" + "44" * 20
    assert events.poll(coordinator.factory, cursor) == []  # nothing twice

    # a reconnecting client (Last-Event-ID) gets exactly what it missed
    resumed = events.Cursor.parse(f"{ids['evaluation']}:{ids['version']}")
    assert resumed is not None
    assert dict(events.poll(coordinator.factory, resumed)) == sent
    assert events.Cursor.parse("garbage") is None
    assert events.Cursor.parse(None) is None


def test_stream_frames_are_server_sent_events(coordinator: Any) -> None:
    rec = Recorder(coordinator.factory)
    rec.accept(STRATEGIES[0], [], 0.02)
    polls = 0

    async def disconnected() -> bool:
        nonlocal polls
        polls += 1
        return polls > 1  # one poll, then the client is gone

    async def collect() -> list[str]:
        gen = events.stream(coordinator.factory, events.Cursor(), 0.0, disconnected)
        return [f async for f in gen]

    frames = asyncio.run(collect())
    assert frames[0].startswith("retry: ")  # interval clamped to the minimum, not a busy loop
    assert int(frames[0].split()[1]) == int(events.MIN_INTERVAL * 1000) + 500
    names = [f.split("event: ")[1].split("\n")[0] for f in frames if "event: " in f]
    assert names == ["hello", "evaluations", "versions"]
    assert all(f.endswith("\n\n") for f in frames[1:])
    assert "id: 2:2\n" in frames[2]  # two evaluations, base + one accepted version
