"""A coordinator on the model world with no chain: what rounds run against outside the demo.

``benchmarks/network_rounds.py`` and ``tests/demo/test_rounds.py`` play rounds through the node
client against this (API on 127.0.0.1, the loop and its evaluation processes in this process),
without anvil, bonds or rewards, which the demo adds and which rounds do not change. The loop
starts with ``max_evaluations`` = one round's budget (the round player raises it per round) and
no live feed (its measurements would compete with fine-tuning for the CPU).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from mergenet.config import Settings
from mergenet.coordinator.settings import CoordinatorSettings, LoopSettings
from mergenet.demo.services import DemoServices
from mergenet.ecosystem.world import World


@contextmanager
def bare_coordinator(
    world: World,
    data_dir: Path,
    *,
    budget: int,
    workers: int | None = None,
    seed: int = 0,
) -> Iterator[DemoServices]:
    """Serve a coordinator on ``world`` with its state under ``data_dir``; stopped on exit."""
    settings = Settings(
        data_dir=data_dir,
        database_url=None,  # a SQLite file in data_dir, whatever the environment says
        keystore_password=SecretStr(secrets.token_urlsafe(16)),
        chain_url=None,
    )
    cs = CoordinatorSettings(
        base_dir=world.base_dir,
        dev_rows=world.dharma_path("dev"),
        heldout_rows=world.dharma_path("heldout"),
        workers=workers,
        loop=LoopSettings(max_evaluations=budget, feed_seconds=0.0, seed=seed),
        chain=False,
    )
    services = DemoServices(settings, cs, port=0)
    try:
        services.start_coordinator()
        yield services
    finally:
        services.stop()
