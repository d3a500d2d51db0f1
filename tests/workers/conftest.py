"""A private Redis for the Celery worker tests, started once for them.

Package-scoped (this folder has an ``__init__.py``): Redis stops when the last test here has run.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest

from mergenet.petals import procs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def redis_url(tmp_path_factory):
    """A private redis-server on a free loopback port (the shared one on 6379 stays untouched)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is needed (Debian package redis-server)")
    port = _free_port()
    log = tmp_path_factory.mktemp("redis") / "redis.log"
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = procs.spawn(argv, log, os.environ)
    try:
        procs.wait_for_log(proc, log, r"Ready to accept connections", 30)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        procs.stop_group(proc.pid)
