"""Fixtures for the live-page tests: a coordinator on a tiny checkpoint (the page never loads
weights, so no model world is needed) and uvicorn serving its app on a loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.coordinator.api.conftest import tiny_base

from mergenet.rewards.anvil import free_port


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Any]:
    from mergenet.config import Settings
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings

    rows = tmp_path / "dev.jsonl"
    rows.write_text('{"input": "1+1=\\nAnswer:", "output": "2", "subject": "add"}\n')
    coord = Coordinator(
        Settings(data_dir=tmp_path / "data", database_url=None),
        CoordinatorSettings(base_dir=tiny_base(tmp_path / "base"), dev_rows=rows, workers=0),
    ).open()
    try:
        yield coord
    finally:
        coord.close()


@pytest.fixture
def server(coordinator: Any) -> Iterator[str]:
    """uvicorn in a thread on a free loopback port; stopped (and joined) by the fixture."""
    import uvicorn

    from mergenet.coordinator.app import create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(coordinator),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="uvicorn-live-page", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "uvicorn did not stop"
