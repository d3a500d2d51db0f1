"""A worker's download survives a coordinator restart: transient failures are retried, others not.

The chaos run (README, Reliability) saw a Celery worker fail a contribution for good because a
delta fetch met ``Connection refused`` while the coordinator restarted.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from mergenet.rewards.anvil import free_port
from mergenet.workers.fetch import ArtifactCache, FetchError


def test_connection_refused_is_retried_until_the_coordinator_is_back(tmp_path: Path) -> None:
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    port = free_port()
    app = FastAPI()

    @app.get("/thing")
    def thing() -> PlainTextResponse:
        return PlainTextResponse("payload")

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    # the "coordinator" comes up 1.5 s after the download starts
    starter = threading.Timer(1.5, server.run)
    starter.start()
    try:
        cache = ArtifactCache(f"http://127.0.0.1:{port}", tmp_path, retry_seconds=30)
        t0 = time.monotonic()
        cache._download("/thing", tmp_path / "out")
        assert (tmp_path / "out").read_text() == "payload"
        assert time.monotonic() - t0 >= 1.0  # it really waited for the restart
    finally:
        server.should_exit = True
        starter.join(timeout=10)


def test_a_coordinator_that_stays_down_fails_with_a_clear_error(tmp_path: Path) -> None:
    cache = ArtifactCache(f"http://127.0.0.1:{free_port()}", tmp_path, retry_seconds=1)
    t0 = time.monotonic()
    with pytest.raises(FetchError, match=r"still failing after 1 s"):
        cache._download("/thing", tmp_path / "out")
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize(("status", "retried"), [(503, True), (404, False), (500, False)])
def test_only_unavailable_answers_are_retried(
    tmp_path: Path, status: int, retried: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(status, json={"detail": "not now"})
        return httpx.Response(200, content=b"ok")

    cache = ArtifactCache("http://127.0.0.1:1", tmp_path, retry_seconds=30)
    cache._http = httpx.Client(base_url=cache.url, transport=httpx.MockTransport(handler))
    monkeypatch.setattr(time, "sleep", lambda s: None)
    if retried:
        cache._download("/x", tmp_path / "out")
        assert len(calls) == 3 and (tmp_path / "out").read_bytes() == b"ok"
    else:
        with pytest.raises(FetchError, match=str(status)):
            cache._download("/x", tmp_path / "out")
        assert len(calls) == 1
