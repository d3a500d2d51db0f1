"""Deltas on older versions (issue 17, item 2; :mod:`mergenet.coordinator.parents`).

A delta signed on version 1 while version 3 is current is accepted, keeps its declared parent,
is scored on version 3 (recipe parent = v3: current + δ), and its temporal weight t counts from
version 1's publication (before: from the version it was scored on, so t ≈ 1). An unknown
parent, a signature over another parent, or a current version of another architecture is a 4xx
that records nothing. The coordinator runs on the API tests' two-tensor checkpoint with a fake
evaluation pool, so no model world is needed (about a second per test).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from sqlalchemy import func, select

from mergenet.coordinator import models as m
from mergenet.coordinator.chain import LedgerHooks
from mergenet.coordinator.loop import EvolutionLoop
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.status import Kind
from mergenet.db import transaction
from mergenet.deltas.models import ModelSource
from mergenet.rewards.ledger import RewardAccrual
from mergenet.rewards.temporal import temporal_weight
from mergenet.rewards.units import to_base_units

from .api.conftest import client, coordinator, tiny_base  # noqa: F401  (fixtures)
from .conftest import account, signed_form
from .test_acceptance import BETTER, FakePool, fake_build

T0 = datetime(2026, 1, 1, tzinfo=UTC)
"""Version 1's publication; v2 a day later, v3 a minute before the upload (at T0 + 48 h)."""
UPLOAD = T0 + timedelta(hours=48)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _add_version(coord: Any, parent: str, created: datetime, change: Any) -> str:
    """A version folder made from ``parent``'s weights by ``change``, stored and registered."""
    src = coord.store.version_dir(parent)
    weights = change(load_file(str(src / "model.safetensors")))
    staging = coord.store.staging_dir()
    save_file(weights, str(staging / "model.safetensors"))
    (staging / "config.json").write_text((src / "config.json").read_text())
    h = ModelSource(staging).sha256()
    coord.store.put_version_dir(staging, h)
    with transaction(coord.factory) as s:
        s.add(
            m.Version(
                hash=h,
                parent_hash=parent,
                weights_path=coord.store.relative(coord.store.version_dir(h)),
                selection_seed=1,
                created_at=created,
            )
        )
    return h


def _nudge(k: float) -> Any:
    return lambda sd: {n: t + k for n, t in sd.items()}


@pytest.fixture
def versions(coordinator: Any) -> list[str]:  # noqa: F811
    """Hashes of v1 (the base, published at T0), v2 and v3 (current)."""
    with transaction(coordinator.factory) as s:
        v1 = s.scalar(select(m.Version).order_by(m.Version.id))
        assert v1 is not None
        v1.created_at, base = T0, v1.hash
    v2 = _add_version(coordinator, base, T0 + timedelta(hours=24), _nudge(0.01))
    v3 = _add_version(coordinator, v2, UPLOAD - timedelta(minutes=1), _nudge(0.01))
    return [base, v2, v3]


def _delta(tmp_path: Path, coord: Any, parent: str, seed: int = 1) -> Path:
    sd = load_file(str(coord.store.version_dir(parent) / "model.safetensors"))
    g = torch.Generator().manual_seed(seed)
    path = tmp_path / f"delta-{seed}.safetensors"
    save_file({n: 0.05 * torch.randn(t.shape, generator=g) for n, t in sd.items()}, str(path))
    return path


def _post(http: Any, coord: Any, path: Path, declared: str, signed: str | None = None) -> Any:
    form = signed_form(account(0), path, signed or declared, 7, coord.domain)
    form["parent_hash"] = declared
    with path.open("rb") as fh:
        return http.post("/api/contributions", data=form, files={"file": ("d.safetensors", fh)})


def _recorded(coord: Any) -> tuple[int, int]:
    with coord.factory() as s:
        return (
            int(s.scalar(select(func.count()).select_from(m.Contribution)) or 0),
            int(s.scalar(select(func.count()).select_from(m.Nonce)) or 0),
        )


def test_a_delta_on_v1_is_scored_on_v3_and_its_t_counts_from_v1(
    coordinator: Any,  # noqa: F811
    client: Any,  # noqa: F811
    versions: list[str],
    tmp_path: Path,
) -> None:
    v1, _, v3 = versions
    r = _post(client, coordinator, _delta(tmp_path, coordinator, v1), v1)
    assert r.status_code == 201, r.text
    sha = r.json()["sha256"]
    assert r.json()["parent_hash"] == v1
    assert client.get("/api/versions/current").json()["hash"] == v3

    pool = FakePool(lambda task: BETTER)
    loop = EvolutionLoop(
        coordinator.factory,
        None,
        pool,
        LoopSettings(strategies=("task_arithmetic",)),
        build=fake_build,
    )
    for _ in range(3):
        loop.step(timeout=0)
    scoring = [t for t in pool.submitted if t.recipe.get("contributions", [{}])[0].get("sha256")]
    assert scoring, "the contribution was never sent for scoring"
    assert scoring[0].recipe["parent"] == v3  # current + δ
    assert scoring[0].recipe["contributions"] == [{"sha256": sha, "weight": 1.0}]
    with transaction(coordinator.factory) as s:
        c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == sha))
        assert c is not None and c.parent_hash == v1  # the declared parent is kept
        cand = s.scalar(
            select(m.Candidate).where(
                m.Candidate.contribution_sha == sha, m.Candidate.kind == Kind.CONTRIBUTION
            )
        )
        assert cand is not None and cand.parent_hash == v3
        assert c.scored_on == v3
        c.created_at = UPLOAD  # a frozen clock: uploaded 48 h after v1, 1 min after v3
        version = s.scalar(select(m.Version).where(m.Version.hash == v3))
        paid = LedgerHooks().contribution_credited(s, version, c, 0.01)
        entry = s.scalar(select(RewardAccrual).where(RewardAccrual.account == c.address))
        assert entry is not None and entry.t is not None
        t_v1 = temporal_weight(UPLOAD, T0)
        assert t_v1 == pytest.approx(0.625)  # two half-lives after v1: 0.5 + 0.5/4
        assert entry.t == pytest.approx(t_v1)
        assert temporal_weight(UPLOAD, _aware(version.created_at)) > 0.999  # the old rule's t
        assert paid == to_base_units(100 * 0.01 * t_v1)


def test_an_unknown_parent_is_409_says_pull_and_records_nothing(
    coordinator: Any,  # noqa: F811
    client: Any,  # noqa: F811
    versions: list[str],
    tmp_path: Path,
) -> None:
    before = _recorded(coordinator)
    r = _post(client, coordinator, _delta(tmp_path, coordinator, versions[0]), "ab" * 32)
    assert r.status_code == 409, r.text
    assert "not a version of this network" in r.text and "pull the current version" in r.text
    assert _recorded(coordinator) == before


def test_a_signature_over_v3_does_not_cover_a_declared_v1(
    coordinator: Any,  # noqa: F811
    client: Any,  # noqa: F811
    versions: list[str],
    tmp_path: Path,
) -> None:
    v1, _, v3 = versions
    before = _recorded(coordinator)
    r = _post(client, coordinator, _delta(tmp_path, coordinator, v1), v1, signed=v3)
    assert r.status_code == 401, r.text
    assert _recorded(coordinator) == before


def test_a_current_version_of_another_architecture_refuses_older_deltas(
    coordinator: Any,  # noqa: F811
    client: Any,  # noqa: F811
    versions: list[str],
    tmp_path: Path,
) -> None:
    """A store whose newest version grew a vocabulary: a delta on v1 cannot be applied to it."""
    v1, _, v3 = versions

    def grow(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return sd | {"embed.weight": torch.cat([sd["embed.weight"], sd["embed.weight"][:1]])}

    _add_version(coordinator, v3, UPLOAD, grow)
    before = _recorded(coordinator)
    r = _post(client, coordinator, _delta(tmp_path, coordinator, v1), v1)
    assert r.status_code == 409, r.text
    assert "cannot be applied to the current version" in r.text and "embed.weight" in r.text
    assert _recorded(coordinator) == before


def test_node_submit_on_an_older_pulled_version_signs_it_and_says_where_it_goes(
    coordinator: Any,  # noqa: F811
    versions: list[str],
    tmp_path: Path,
) -> None:
    """The node's own submit path over a finetune output folder made on v1 (v3 current)."""
    import json

    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app
    from mergenet.node.client import CoordinatorClient
    from mergenet.node.submit import resolve_artifact, submit_artifact

    v1, _, v3 = versions
    out = tmp_path / "run"
    out.mkdir()
    _delta(tmp_path, coordinator, v1, seed=2).rename(out / "delta.safetensors")
    (out / "contribution.json").write_text(json.dumps({"kind": "dense", "parent_hash": v1}))
    node = CoordinatorClient("http://testserver")
    node._http = TestClient(create_app(coordinator))  # the node's client, in process
    said: list[str] = []
    info = submit_artifact(node, account(1), resolve_artifact(out, None), say=said.append)
    assert info["parent_hash"] == v1
    assert any("will be applied to the current version " + v3[:16] in line for line in said)


def test_node_submit_says_an_older_delta_is_applied_to_the_current_version() -> None:
    from mergenet.node.errors import NodeError
    from mergenet.node.submit import parent_notice

    class Client:
        def __init__(self, current: str | None):
            self.current = current

        def current_version(self) -> dict[str, str]:
            if self.current is None:
                raise NodeError("unreachable")
            return {"hash": self.current}

    old, new = "1" * 64, "3" * 64
    notice = parent_notice(Client(new), old)  # type: ignore[arg-type]
    assert notice is not None and "applied" in notice and new[:16] in notice
    assert parent_notice(Client(old), old) is None  # type: ignore[arg-type]
    assert parent_notice(Client(None), old) is None  # type: ignore[arg-type]
