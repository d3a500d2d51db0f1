"""Each contribution's impact (:mod:`mergenet.coordinator.impact`) and the contributor API
(``/api/contributors/{address}``, :mod:`mergenet.coordinator.contributors`): lineage, rewards,
the reason line, and clear 4xx answers for bad or unknown addresses; ``/api/feed``."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select
from tests.coordinator.api.conftest import client as client
from tests.coordinator.api.conftest import coordinator as coordinator
from tests.web.history import Recorder, result

from mergenet.coordinator import impact
from mergenet.coordinator import models as m
from mergenet.db import transaction
from mergenet.rewards.models import RewardAccrual

ADDR = ["0x1111111111111111111111111111111111111111", "0x2222222222222222222222222222222222222222"]


def test_impact_is_loss_drop_over_norm_times_coverage() -> None:
    parent = result(0.0)
    cand = result(0.0)
    names = sorted(cand["tasks"])
    cand["tasks"][names[0]]["answer_loss"] = 1.5 * 0.7  # −30 % on one task of six
    cand["tasks"][names[1]]["answer_loss"] = 1.5 * 0.99  # −1 %: below 2 %, not moved
    cand["tasks"][names[2]]["answer_loss"] = 1.5 * 1.2  # forgot: +20 %
    got = impact.impact(parent, cand, 0.02)
    assert got is not None
    assert got["tasks_moved"] == [names[0]]
    assert got["coverage"] == pytest.approx(1 / 6)
    assert got["delta_performance"] == pytest.approx(0.3)
    assert got["impact"] == pytest.approx(0.3 / 0.02 / 6)
    assert impact.impact(parent, parent, 0.02)["impact"] == 0.0  # a no-op moves nothing
    assert impact.impact(parent, cand, 0.0)["impact"] is None  # no norm: no ratio
    assert impact.impact(None, None, 0.02) is None


def _history(coordinator: Any) -> tuple[Recorder, list[str]]:
    rec = Recorder(coordinator.factory)
    shas = rec.contributions(ADDR, per_address=3)
    for h in shas:
        rec.contribution_score(h)
    rec.feed(3)
    rec.accept("ties", shas[:2], 0.03)  # merges ADDR[0]'s first two
    rec.feed(3)
    with transaction(coordinator.factory) as s:
        rows = {c.sha256: c for c in s.scalars(select(m.Contribution))}
        rows[shas[0]].reward = str(5 * 10**18 + 1)
        rows[shas[1]].reward = None  # merged, and the ledger credited it nothing
        # the ledger credited only shas[0] (the others show why they earned nothing)
        s.execute(delete(RewardAccrual).where(RewardAccrual.contribution_id != shas[0]))
        rows[shas[1]].metrics = {"attribution": [{"marginal": 0.001, "credited": 0.0}]}
        rows[shas[2]].in_pool = False
        rows[shas[3]].status = "received"
        rows[shas[4]].status = "failed"
    return rec, shas


def test_contributor_api_lineage_rewards_and_reasons(client: Any, coordinator: Any) -> None:
    _, shas = _history(coordinator)
    r = client.get(f"/api/contributors/{ADDR[0]}")
    assert r.status_code == 200, r.text
    body = r.json()
    rows = {c["sha256"]: c for c in body["contributions"]}
    assert body["merged"] == 2
    first = rows[shas[0]]
    assert [v["weight"] for v in first["versions"]] == [0.5]
    assert first["reason"] is None
    assert first["reward"] == {"base_units": str(5 * 10**18 + 1), "tokens": "5.000000000000000001"}
    assert first["impact"]["coverage"] is not None and "parent version" in first["gain_relative_to"]
    assert "marginal gain +0.0010" in rows[shas[1]]["reason"]
    assert rows[shas[2]]["reason"] == "not admitted to the pool: no task's answer loss fell by 2%"
    other = client.get(f"/api/contributors/{ADDR[1].upper().replace('0X', '0x')}").json()
    reasons = {c["sha256"]: c["reason"] for c in other["contributions"]}
    assert reasons[shas[3]] == "pending scoring"
    assert reasons[shas[4]].startswith("failed")
    assert reasons[shas[5]] == "in the merge pool, not merged into a version yet"
    assert other["rewards"]["accrued"]["base_units"].isdigit()


@pytest.mark.parametrize(
    ("address", "status"),
    [("0x" + "3" * 40, 404), ("nonsense", 422), ("0x" + "g" * 40, 422), ("0x" + "1" * 41, 422)],
)
def test_contributor_api_rejects_bad_and_unknown_addresses(
    client: Any, address: str, status: int
) -> None:
    r = client.get(f"/api/contributors/{address}")
    assert r.status_code == status
    assert r.json()["detail"]


def test_feed_api_levels_and_bars(client: Any, coordinator: Any) -> None:
    _history(coordinator)
    body = client.get("/api/feed").json()
    assert len(body["points"]) == 6
    base, cur = body["levels"]
    assert base["is_base"] and not cur["is_base"]
    assert base["points"] == cur["points"] == 3
    assert cur["macro"] > base["macro"] and cur["rows"] == 3 * 16 * 6
    bar = next(iter(body["tasks"]["tasks"].values()))
    assert bar["base"]["low"] <= bar["base"]["acc"] <= bar["base"]["high"]
    page = client.get(f"/contributors/{ADDR[0]}")
    assert page.status_code == 200 and "contributor.js" in page.text


def test_tasks_and_leaderboard_read_the_feed_and_impact(client: Any, coordinator: Any) -> None:
    _history(coordinator)
    bars = client.get("/api/feed").json()["tasks"]["tasks"]
    tasks = client.get("/api/tasks").json()["tasks"]
    assert tasks == {n: {k: v[k]["acc"] for k in ("base", "current")} for n, v in bars.items()}
    board = client.get("/api/leaderboard").json()
    assert board[0]["address"] == ADDR[0]  # earned the most
    assert all(r["best_impact"] is not None and r["best_impact"] > 0 for r in board)
