"""``mergenet demo --exit``: the README's main command runs the whole network, prints the
summary, and stops everything it started (HTTP server, evaluation processes, anvil)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.world, pytest.mark.chain, pytest.mark.slow, pytest.mark.timeout(1500)]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _anvils() -> int:
    out = subprocess.run(["pgrep", "-c", "-x", "anvil"], capture_output=True, text=True).stdout
    return int(out.strip() or 0)


def test_demo_runs_the_network_and_stops_what_it_started(world: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGENET_")} | {
        "MERGENET_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "160",
    }
    anvils_before = _anvils()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "mergenet.cli", "demo", "--exit", "--budget", "30", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    elapsed = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    for name in world.contributor_names:
        assert re.search(rf"{name}\s+0x[0-9a-fA-F]{{40}} pulled [0-9a-f]{{10}}, submitted", out)
    for title in ("core versions", "held-out macro accuracy", "contributors", "H(s)"):
        assert title in out
    assert "epoch(s) confirmed on chain" in out
    url = re.search(r"coordinator (http://127\.0\.0\.1:(\d+))", out)
    assert url is not None
    # everything it started is gone: the HTTP port is closed and the anvil has exited
    assert not _listening(int(url.group(2)))
    state = next((tmp_path / "data" / "demo").glob("*/coordinator/chain"))
    assert not (state / "anvil.json").exists()
    deadline = time.monotonic() + 15  # a killed anvil may take a moment to be reaped
    while _anvils() != anvils_before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _anvils() == anvils_before
    print(f"\nmergenet demo --exit --budget 30: {elapsed:.0f} s\n{out[-3000:]}")
