"""With a chain configured, scored contributions accrue rewards in the ledger (visible at
``GET /api/rewards/{address}``) and accepted versions are recorded in the on-chain registry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from .conftest import account, coordinator_settings, signed_form

pytestmark = [pytest.mark.world, pytest.mark.chain]


def test_rewards_accrue_and_versions_are_recorded(cworld: Any, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from mergenet.config import Settings
    from mergenet.coordinator import models as m
    from mergenet.coordinator.app import create_app
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.rewards.anvil import start_anvil
    from mergenet.rewards.chain import chain_up, coordinator_account
    from mergenet.rewards.client import connect
    from mergenet.rewards.models import RewardAccrual
    from mergenet.rewards.registry import lineage

    anvil = start_anvil()
    coord = None
    try:
        settings = Settings(
            data_dir=tmp_path / "data",
            chain_url=anvil.rpc_url,
            keystore_password=SecretStr("test-password"),
        )
        owner = coordinator_account(settings, create=True)
        connect(anvil.rpc_url).provider.make_request(
            "anvil_setBalance", [owner.address, hex(10**20)]
        )
        chain_up(settings)
        coord = Coordinator(settings, coordinator_settings(cworld, workers=0, chain=True)).open()
        client = TestClient(create_app(coord))
        parent = client.get("/api/versions/current").json()["hash"]
        path = cworld.delta_path(cworld.contributor_names[2])
        with path.open("rb") as fh:
            r = client.post(
                "/api/contributions",
                data=signed_form(account(0), path, parent, 1, coord.domain),
                files={"file": ("d.safetensors", fh)},
            )
        assert r.status_code == 201, r.text
        sha = r.json()["sha256"]
        deadline = time.monotonic() + 300  # scoring takes seconds, more on a busy machine
        while time.monotonic() < deadline:
            coord.loop.step(0.2)
            if client.get(f"/api/contributions/{sha}").json()["status"] == "scored":
                break
        status = client.get(f"/api/contributions/{sha}").json()
        assert status["reward"] is not None
        with coord.factory() as s:
            accrual = s.scalar(select(RewardAccrual).where(RewardAccrual.contribution_id == sha))
            assert accrual is not None and accrual.account == account(0).address
            assert str(accrual.amount) == status["reward"]["base_units"]
            base = s.scalar(select(m.Version))
        rewards = client.get(f"/api/rewards/{account(0).address}").json()
        assert rewards["accrued"]["base_units"] == status["reward"]["base_units"]
        assert rewards["claimed"]["base_units"] == "0"  # read from the chain
        assert client.get("/api/rewards/not-an-address").status_code == 422

        coord.loop.on_accept(base)  # what the loop calls after committing a version
        records = lineage(coord.chain.contracts)
        assert [r.version_hash for r in records] == ["0x" + base.hash]
    finally:
        if coord is not None:
            coord.close()
        anvil.stop()
    assert not anvil.alive()
