"""Every JSON route answers exactly what the read side produces (its response model drops,
adds or retypes nothing), over a recorded history with contributions, evaluations, accepted
versions and rewards."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ...web.history import STRATEGIES, Recorder

ADDRESSES = ["0x" + "11" * 20, "0x" + "22" * 20]


@pytest.fixture
def history(coordinator: Any) -> dict[str, Any]:
    rec = Recorder(coordinator.factory)
    shas = rec.contributions(ADDRESSES)
    rec.contribution_score(shas[0])
    rec.selection(STRATEGIES[0], shas[:2], 0.004)
    version = rec.accept(STRATEGIES[1], shas[:3], 0.02)
    return {"shas": shas, "version": version}


def _same(got: Any, expected: Any) -> None:
    assert got == json.loads(json.dumps(expected)), (got, expected)


def test_json_routes_answer_the_read_side_unchanged(
    coordinator: Any, client: Any, history: dict[str, Any]
) -> None:
    from mergenet.coordinator import leaderboard, queries
    from mergenet.coordinator.web import events
    from mergenet.rewards.service import rewards_for_address

    sha, version = history["shas"][0], history["version"]
    with coordinator.factory() as s:
        expected = {
            f"/api/contributions/{sha}": queries.contribution(s, sha),
            "/api/versions": queries.versions(s),
            "/api/versions/current": queries.current(s),
            f"/api/versions/{version}/recipe": queries.recipe(s, version),
            "/api/history": queries.history(s),
            "/api/strategies": queries.strategies(s),
            f"/api/rewards/{ADDRESSES[0]}": rewards_for_address(s, ADDRESSES[0], None).to_json(),
            "/api/live": events.snapshot(s),
            "/api/leaderboard": leaderboard.leaderboard(s, None),
            "/api/tasks": leaderboard.task_comparison(s),
        }
    assert len(expected["/api/history"]["evaluations"]) == 4
    assert expected[f"/api/contributions/{sha}"]["in_versions"] == [version]
    for path, body in expected.items():
        r = client.get(path)
        assert r.status_code == 200, (path, r.text)
        _same(r.json(), body)
    info = client.get("/api/info").json()
    assert {k: info[k] for k in ("chain_id", "current_version", "rewards_on_chain")} == {
        "chain_id": 31337,
        "current_version": version,
        "rewards_on_chain": False,
    }


def test_chain_route_sends_only_the_keys_the_deployment_has(coordinator: Any, client: Any) -> None:
    from types import SimpleNamespace

    assert client.get("/api/chain").status_code == 404  # no chain: a message, not a body
    full = {
        "rpc_url": "http://127.0.0.1:8545",
        "chain_id": 31337,
        "token": "0x" + "01" * 20,
        "distributor": "0x" + "02" * 20,
        "registry": "0x" + "03" * 20,
        "block": 7,
    }
    for body in ({"block": 3}, full):
        coordinator.chain = SimpleNamespace(public_json=lambda b=body: b, contracts=None)
        try:
            assert client.get("/api/chain").json() == body
        finally:
            coordinator.chain = None
