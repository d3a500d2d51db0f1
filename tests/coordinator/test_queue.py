"""Fair queues (coordinator/queue.py): round-robin scoring over addresses, the per-address
quota on unscored uploads, and the pool slot kept for the evolution loop.

Before: scoring was first come first served by id, so a flood from fresh keys made an honest
contribution wait (99 s for 8 junk uploads on the world), and one key could queue any number
of uploads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import models as m
from mergenet.coordinator.loop import EvolutionLoop
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.status import ContributionStatus, Purpose
from mergenet.db import make_engine, make_session_factory, transaction
from mergenet.migrate import upgrade

from .api.conftest import client, coordinator, tiny_base  # noqa: F401  (fixtures)
from .conftest import account
from .test_acceptance import BASE, BETTER, FakePool, fake_build, result

WORSE = result({"a": 0.5, "b": 0.5}, loss=1.2)
"""A scoring that lowers no task's loss: the contribution never joins the merge pool."""


def address(i: int) -> str:
    return f"0x{i + 1:040x}"


def sha(i: int) -> str:
    return f"{i:064x}"


@pytest.fixture
def factory(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    upgrade(engine)
    f = make_session_factory(engine)
    with transaction(f) as s:
        s.add(m.Version(hash=BASE, weights_path="versions/base", selection_seed=1))
    yield f
    engine.dispose()


def upload(factory: sessionmaker[Session], who: int, n: int) -> None:
    """``n`` uploads from address ``who``, in this order (ids grow)."""
    with transaction(factory) as s:
        if s.get(m.Contributor, address(who)) is None:
            s.add(m.Contributor(address=address(who)))
            s.flush()
        start = len(s.scalars(select(m.Contribution.id)).all())
        for k in range(n):
            s.add(
                m.Contribution(
                    sha256=sha(start + k),
                    address=address(who),
                    parent_hash=BASE,
                    nonce=start + k,
                    signature="0x",
                    size_bytes=1,
                    relative_norm=0.01,
                )
            )
            s.flush()


def make_loop(factory: sessionmaker[Session], pool: FakePool, **kw: Any) -> EvolutionLoop:
    settings = LoopSettings(strategies=("task_arithmetic",), **kw)
    return EvolutionLoop(factory, None, pool, settings, build=fake_build)


def scored_order(factory: sessionmaker[Session], pool: FakePool) -> list[str]:
    """Addresses in the order their contributions were dispatched for scoring."""
    with factory() as s:
        owner = {c.sha256: c.address for c in s.scalars(select(m.Contribution))}
    return [
        owner[t.recipe["contributions"][0]["sha256"]]
        for t in pool.submitted
        if f":{Purpose.CONTRIBUTION}:" in t.key
    ]


def test_a_flood_of_fresh_keys_queues_behind_an_honest_contributor(factory) -> None:
    upload(factory, 0, 3)  # one key with three uploads
    upload(factory, 1, 1)  # the honest contributor
    for k in range(2, 10):  # then 8 fresh keys, one junk upload each
        upload(factory, k, 1)
    pool = FakePool(lambda task: WORSE)
    pool.capacity = 1
    loop = make_loop(factory, pool)
    for _ in range(12):
        loop.step(0)
    order = scored_order(factory, pool)
    flood = [address(k) for k in range(2, 10)]
    # first come first served gave 0, 0, 0, 1, flood…; one per address per turn instead
    assert order == [address(0), address(1), *flood, address(0), address(0)]
    with factory() as s:
        statuses = set(s.scalars(select(m.Contribution.status)))
    assert statuses == {ContributionStatus.SCORED}


def test_the_turn_order_survives_a_restart(factory) -> None:
    upload(factory, 0, 2)
    upload(factory, 1, 1)
    pool = FakePool(lambda task: WORSE)
    pool.capacity = 1
    make_loop(factory, pool).step(0)  # address 0's first upload is scored, then the process dies
    upload(factory, 2, 1)  # a fresh key arrives while the coordinator is down
    restarted = make_loop(factory, pool)
    for _ in range(4):
        restarted.step(0)
    assert scored_order(factory, pool) == [address(0), address(1), address(0), address(2)]


def test_the_reserved_slot_keeps_proposals_flowing_while_contributions_wait(factory) -> None:
    upload(factory, 0, 1)
    pool = FakePool(lambda task: BETTER)
    pool.capacity = 2
    loop = make_loop(factory, pool)
    loop.step(0)  # scores it: it joins the merge pool
    for k in range(1, 9):  # a flood: 8 keys
        upload(factory, k, 1)
    for _ in range(4):
        loop._fill()
        purposes = [t.key.split(":")[1] for t in pool.pending]
        assert purposes.count(Purpose.CONTRIBUTION) <= 1  # capacity 2 − reserved 1
        assert len(pool.pending) == 2  # and the other slot proposes, confirms or attributes
        loop.step(0)
    loop_work = [t for t in pool.submitted if f":{Purpose.CONTRIBUTION}:" not in t.key]
    assert len(loop_work) == 4 and f":{Purpose.SELECTION}:" in loop_work[0].key


def test_with_nothing_else_to_run_the_reserved_slot_still_scores(factory) -> None:
    for k in range(2):
        upload(factory, k, 1)
    pool = FakePool(lambda task: WORSE)  # nobody joins the pool: the loop has nothing to run
    pool.capacity = 2
    loop = make_loop(factory, pool)
    loop._fill()
    assert len(pool.pending) == 2


def _delta(tmp: Path, seed: int) -> Path:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    path = tmp / f"delta{seed}.safetensors"
    save_file(
        {
            "embed.weight": 0.05 * torch.randn(8, 4, generator=g),
            "head.weight": 0.05 * torch.randn(4, 8, generator=g),
        },
        str(path),
    )
    return path


def _post(http: Any, path: Path, nonce: int) -> Any:
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import SigningDomain, sign_submission

    acct = account(3)
    parent = http.get("/api/versions/current").json()["hash"]
    domain = SigningDomain.from_json(http.get("/api/info").json()["signing_domain"])
    form = {
        "address": acct.address,
        "parent_hash": parent,
        "nonce": str(nonce),
        "signature": sign_submission(acct, sha256_file(path), parent, nonce, domain),
    }
    with path.open("rb") as fh:
        return http.post("/api/contributions", data=form, files={"file": ("d", fh)})


def _rows(coord: Any) -> dict[str, list[tuple]]:
    from mergenet.db import Base

    with coord.engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr)
            for t in Base.metadata.sorted_tables
        }


def test_the_fourth_pending_upload_of_one_address_gets_429_and_changes_nothing(
    coordinator: Any,  # noqa: F811  (the API tests' fixtures: a tiny checkpoint, no world)
    client: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    for nonce in range(3):
        r = _post(client, _delta(tmp_path, nonce), nonce)
        assert r.status_code == 201, r.text
    before = _rows(coordinator)
    r = _post(client, _delta(tmp_path, 3), 3)
    assert r.status_code == 429, r.text
    assert "3 uploads waiting to be scored" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) > 0
    assert _rows(coordinator) == before  # no contribution, no nonce used
    incoming = coordinator.store.root / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())
