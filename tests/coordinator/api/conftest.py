"""Fixtures for the API tests: a coordinator on a two-tensor checkpoint (the API never loads a
model, so no model world is needed), the app over it, and uvicorn on a loopback port for the
tests that need a real socket (body caps, the event stream)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def tiny_base(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    save_file(
        {
            "embed.weight": torch.randn(8, 4, generator=g),
            "head.weight": torch.randn(4, 8, generator=g),
        },
        str(folder / "model.safetensors"),
    )
    (folder / "config.json").write_text("{}")
    return folder


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
def client(coordinator: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app

    with TestClient(create_app(coordinator)) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(coordinator: Any) -> Iterator[str]:
    """uvicorn in a thread on a free loopback port; stopped (and joined) by the fixture."""
    import uvicorn

    from mergenet.coordinator.app import create_app

    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(
            create_app(coordinator),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=srv.run, name="uvicorn-api-test", daemon=True)
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
