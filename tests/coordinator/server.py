"""A real ``mergenet coordinator up`` process for the end-to-end and crash tests.

Started in its own session so the evaluation workers can be killed with it (kill -9 of the
whole process group is how the crash test simulates a power cut).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CoordinatorProcess:
    def __init__(
        self,
        world: Any,
        data_dir: Path,
        *,
        workers: int,
        max_evaluations: int = 0,
        extra_env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ):
        """``extra_args`` are passed to ``mergenet coordinator up`` (e.g. ``--pool celery``)."""
        self.extra_args = extra_args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log = data_dir.parent / f"coordinator-{self.port}.log"
        self.env = (
            os.environ
            | {
                "MERGENET_DATA_DIR": str(data_dir),
                "MERGENET_COORDINATOR_BASE_DIR": str(world.base_dir),
                "MERGENET_COORDINATOR_DEV_ROWS": str(world.dharma_path("dev")),
                "MERGENET_COORDINATOR_HELDOUT_ROWS": str(world.dharma_path("heldout")),
                "MERGENET_COORDINATOR_WORKERS": str(workers),
                "MERGENET_COORDINATOR_MAX_EVALUATIONS": str(max_evaluations),
            }
            | (extra_env or {})
        )
        self.env.pop("MERGENET_DATABASE_URL", None)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180) -> CoordinatorProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mergenet.cli",
                    "coordinator",
                    "up",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *self.extra_args,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"coordinator exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.kill()
        raise TimeoutError(f"coordinator did not come up: {self.log.read_text()[-3000:]}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def kill(self) -> None:
        """kill -9 the coordinator and its evaluation workers (the whole process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=60)
        # the workers too, whatever state the main process left them in
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)
