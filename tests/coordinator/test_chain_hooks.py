"""With a chain configured, a score alone pays nothing (the flat per-upload fee is gone); a
contribution is paid for its confirmed marginal improvement once a version that merges it is
accepted and attributed (visible at ``GET /api/rewards/{address}``), and accepted versions are
recorded in the on-chain registry."""

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
    from mergenet.db import transaction
    from mergenet.rewards.anvil import start_anvil
    from mergenet.rewards.chain import chain_up, coordinator_account
    from mergenet.rewards.client import connect
    from mergenet.rewards.ledger import marginal_entry
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
        path = cworld.delta_path(cworld.contributor_names[0])  # alice: +held-out at 0.6
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
        assert status["status"] == "scored" and status["reward"] is None  # no fee per upload
        with coord.factory() as s:
            assert s.scalar(select(RewardAccrual)) is None
            base = s.scalar(select(m.Version))
        version = _accept(coord, base.hash, sha)  # as the loop does after a confirmation
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and _plan(coord, version)["state"] == "pending":
            coord.loop.step(0.2)  # V on P: 1 + 0 evaluations (V∖c is the base itself)
        plan = _plan(coord, version)
        entry = plan["credit"][0]
        print(f"\nmarginal {entry['marginal']:+.4f}, credited {entry['credited']:.4f}")
        assert plan["state"] == "done" and entry["sha256"] == sha and entry["candidate"] is None
        assert entry["marginal"] == pytest.approx(plan["gain"])  # G(V | P) − G(P | P)
        status = client.get(f"/api/contributions/{sha}").json()
        with coord.factory() as s:
            accrual = s.scalar(
                select(RewardAccrual).where(
                    RewardAccrual.contribution_id == marginal_entry(version, sha)
                )
            )
        rewards = client.get(f"/api/rewards/{account(0).address}").json()
        if entry["credited"] > 0:
            assert accrual is not None and accrual.account == account(0).address
            assert str(accrual.amount) == status["reward"]["base_units"] == entry["reward"]
            assert rewards["accrued"]["base_units"] == str(accrual.amount)
        else:  # below the margin (alice alone at 0.6: −0.043, −0.056): recorded, not paid
            assert accrual is None and status["reward"] is None
            assert rewards["accrued"]["base_units"] == "0"
            with transaction(coord.factory) as s:  # the pay path as a positive marginal takes it
                v = s.scalar(select(m.Version).where(m.Version.hash == version))
                c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == sha))
                paid = coord.chain.contribution_credited(s, v, c, 0.02)
            assert 0.5 * 2 * 10**18 <= paid <= 2 * 10**18  # 100 × 0.02 tokens × t
            rewards = client.get(f"/api/rewards/{account(0).address}").json()
            assert rewards["accrued"]["base_units"] == str(paid)
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


def _accept(coord: Any, parent: str, sha: str) -> str:
    """Build and commit ``parent`` + 0.6·δ as a confirmed candidate would be; its hash."""
    from mergenet.coordinator import models as m
    from mergenet.coordinator.acceptance import Scored
    from mergenet.db import transaction
    from mergenet.merge_strategies.recipe import Recipe

    recipe = Recipe(
        parent=parent,
        strategy="task_arithmetic",
        contributions=[{"sha256": sha, "weight": 0.6}],
    ).canonical()
    with transaction(coord.factory) as s:
        cand = m.Candidate(
            parent_hash=parent,
            strategy=recipe.strategy,
            kind="single",
            recipe=recipe.model_dump(mode="json", exclude_none=True),
            recipe_hash=recipe.sha256,
            contribution_sha=sha,
            status="confirming",
            sample_seed=1,
        )
        s.add(cand)
        s.flush()
        cid = cand.id
    acceptance = coord.loop.acceptance
    v = acceptance._commit_version(cid, acceptance.build(recipe), Scored(0.7, 0.6, 0.1, {}))
    assert v is not None
    return v.hash


def _plan(coord: Any, version: str) -> dict[str, Any]:
    from mergenet.coordinator import models as m

    with coord.factory() as s:
        v = s.scalar(select(m.Version).where(m.Version.hash == version))
        return dict(v.metrics["attribution"])
