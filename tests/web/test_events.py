"""The live stream without a browser: cursors, polling, the events it yields and the
``/api/events`` route over a real socket (sse-starlette's framing)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

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


def test_stream_yields_hello_then_new_rows_with_cursor_ids(coordinator: Any) -> None:
    rec = Recorder(coordinator.factory)
    rec.accept(STRATEGIES[0], [], 0.02)

    async def first(n: int) -> list[Any]:
        gen = events.stream(coordinator.factory, events.Cursor(), 0.0)
        out = [await anext(gen) for _ in range(n)]
        await gen.aclose()
        return out

    hello, evaluations, versions = asyncio.run(first(3))
    assert hello.event == "hello" and json.loads(hello.data) == {"evaluation": 0, "version": 0}
    assert hello.retry == int(events.MIN_INTERVAL * 1000) + 500  # clamped, never a busy loop
    assert [evaluations.event, versions.event] == ["evaluations", "versions"]
    assert evaluations.id == versions.id == "2:2"  # two evaluations; base + one version
    assert [p["purpose"] for p in json.loads(evaluations.data)] == ["selection", "confirmation"]
    assert versions.encode().startswith(b"id: 2:2\nevent: versions\ndata: [{")
    assert versions.encode().endswith(b"}]\n\n")


def _read_events(url: str, headers: dict[str, str], until: str) -> list[tuple[str, str, str]]:
    """(event, id, data) of each event until one named ``until`` (bounded by a timeout)."""
    got: list[tuple[str, str, str]] = []
    fields: dict[str, str] = {}
    with httpx.stream("GET", url, headers=headers, timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        for line in r.iter_lines():
            if line == "":
                if "event" in fields:
                    got.append((fields["event"], fields.get("id", ""), fields.get("data", "")))
                    if fields["event"] == until:
                        return got
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
    raise AssertionError(f"stream ended before {until}: {got}")


def test_events_route_streams_and_resumes_from_last_event_id(coordinator: Any, server: str) -> None:
    rec = Recorder(coordinator.factory)
    rec.accept(STRATEGIES[0], [], 0.02)
    url = f"{server}/api/events?interval=0.2"

    got = _read_events(url + "&after=0:0", {}, until="versions")
    assert [e for e, _, _ in got] == ["hello", "evaluations", "versions"]
    assert got[2][1] == "2:2" and json.loads(got[2][2])[-1]["strategy"] == STRATEGIES[0]

    # Last-Event-ID wins over ?after=: a reconnect gets only what it missed
    rec.accept(STRATEGIES[1], [], 0.03)
    got = _read_events(url + "&after=0:0", {"Last-Event-ID": "2:2"}, until="versions")
    assert json.loads(got[0][2]) == {"evaluation": 2, "version": 2}
    assert [p["id"] for p in json.loads(got[1][2])] == [3, 4]
    assert got[2][1] == "4:3"
