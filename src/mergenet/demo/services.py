"""The demo's services: a local chain, and the coordinator (API + loop) served in-process.

Everything here is started by the demo and stopped by it: ``DemoServices.stop`` shuts the
HTTP server, the loop and the evaluation processes, then the anvil it started.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from mergenet.config import Settings
from mergenet.coordinator.settings import CoordinatorSettings
from mergenet.rewards.chain import chain_up


def free_port(preferred: int, host: str = "127.0.0.1") -> int:
    """``preferred`` if nothing listens there, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


@dataclass
class DemoServices:
    settings: Settings
    cs: CoordinatorSettings
    host: str = "127.0.0.1"
    port: int = 8000
    coordinator: Any = None
    server: Any = None
    chain_started: bool = False
    pool_factory: Any = None
    """None: the in-process evaluation pool; else a ``Coordinator`` pool factory (the Petals
    swarm's, :func:`mergenet.coordinator.petals_pool.petals_pool_factory`)."""
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_chain(self) -> Any:
        result = chain_up(self.settings)
        self.chain_started = result.started_anvil
        return result.deployment

    def start_coordinator(self) -> None:
        import uvicorn

        from mergenet.coordinator.app import create_app
        from mergenet.coordinator.runtime import Coordinator

        self.coordinator = Coordinator(
            self.settings, self.cs, pool_factory=self.pool_factory
        ).open()
        self.port = free_port(self.port, self.host)
        config = uvicorn.Config(
            create_app(self.coordinator), host=self.host, port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="demo-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the coordinator's HTTP server did not start on {self.url}")
            time.sleep(0.05)
        self.coordinator.start_loop()

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            if self._thread is not None:
                self._thread.join(timeout=15)
        if self.coordinator is not None:
            self.coordinator.close()
        if self.chain_started:
            from mergenet.rewards.chain import chain_down

            chain_down(self.settings)
