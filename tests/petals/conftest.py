"""A real Petals swarm on loopback for the Petals tests, started once for them.

Package-scoped (this folder has an ``__init__.py``): the swarm stops when the last test here
has run, not at the end of the whole suite.

The swarm serves the world's base model from two servers (each half the blocks) behind a
bootstrap DHT peer, started and stopped through the real ``mergenet petals up/down``
commands. Teardown checks that no process of any peer group and no ``p2pd`` of ours is
left. The Petals environment comes from ``make petals-env`` (``make test`` builds it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mergenet.petals import procs
from mergenet.petals.env import petals_python


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real ``mergenet`` command in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "mergenet.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def petals_py() -> Path:
    """The Petals interpreter; a missing environment is a failure, not a skip (CI builds it)."""
    return petals_python()


@pytest.fixture(scope="session")
def model_dir(world) -> Path:
    return world.base_dir


@pytest.fixture(scope="session")
def tokenizer(world):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(world.base_dir)


@pytest.fixture(scope="package")
def swarm(petals_py, model_dir, tmp_path_factory):
    """``mergenet petals up`` on the world's base; yields its state; ``down`` at the end."""
    from mergenet.petals.swarm import SwarmState, swarm_dir

    state_dir = tmp_path_factory.mktemp("petals-state")
    before = {pid for pid, _ in procs.p2pd_processes()}
    up = run_cli("petals", "up", "--model", str(model_dir), "--state-dir", str(state_dir))
    assert up.returncode == 0, up.stdout + up.stderr
    state = SwarmState.load(swarm_dir(state_dir, "core"))
    groups = [p.pid for p in state.peers]
    try:
        yield state, state_dir
    finally:
        down = run_cli("petals", "down", "--state-dir", str(state_dir))
        assert down.returncode == 0, down.stdout + down.stderr
        assert not [g for g in groups if procs.group_alive(g)], "a peer group survived down"
        left = [pid for pid, pgid in procs.p2pd_processes() if pid not in before]
        assert not left, f"p2pd left running: {left}"


@pytest.fixture(scope="package")
def scorer(swarm, tmp_path_factory):
    """A scorer (Petals client process) connected to the session swarm."""
    from mergenet.petals.client import PetalsScorer

    state, _ = swarm
    log = tmp_path_factory.mktemp("petals-scorer") / "scorer.log"
    w = PetalsScorer(Path(state.model_dir), state.initial_peers, state.prefix, log)
    try:
        yield w
    finally:
        w.close()
        assert not procs.group_alive(w.proc.pid)
