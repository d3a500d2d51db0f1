"""Persistence on SQLite and PostgreSQL alike: migrations, constraints, and a loop that
resumes from the database after its process state is thrown away."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from mergenet.coordinator import models as m
from mergenet.db import Base, make_engine, transaction
from mergenet.migrate import downgrade, upgrade

from .conftest import account, signed_form


def test_migrations_match_the_models_and_round_trip(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import mergenet.rewards.models  # noqa: F401 - the ledger's tables are migrated too

    engine = make_engine(db_url)
    try:
        upgrade(engine)
        upgrade(engine)  # idempotent
        tables = set(inspect(engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        assert {"contributions", "nonces", "reward_accruals", "strategy_weights"} <= tables
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        downgrade(engine)
        assert not {"contributions", "versions"} & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert "versions" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_nonces_are_single_use_in_the_database(db_url: str) -> None:
    from mergenet.db import make_session_factory

    engine = make_engine(db_url)
    try:
        upgrade(engine)
        factory = make_session_factory(engine)
        addr = account(0).address
        with transaction(factory) as s:
            s.add(m.Contributor(address=addr))
            s.flush()
            s.add(m.Nonce(address=addr, nonce=2**62))
        with pytest.raises(IntegrityError), transaction(factory) as s:
            s.add(m.Nonce(address=addr, nonce=2**62))
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(m.Nonce)) == 1
    finally:
        engine.dispose()


@pytest.mark.world
def test_loop_state_survives_a_restart(db_url: str, cworld: Any, make_coordinator: Any) -> None:
    """Contributions, evaluations, H(s) and unfinished candidates outlive the process objects."""
    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app

    coord = make_coordinator(db_url)
    client = TestClient(create_app(coord))
    parent = client.get("/api/versions/current").json()["hash"]
    shas = []
    for i, name in enumerate(cworld.contributor_names[:3]):
        path = cworld.delta_path(name)
        with path.open("rb") as fh:
            r = client.post(
                "/api/contributions",
                data=signed_form(account(i), path, parent, 1),
                files={"file": ("d.safetensors", fh)},
            )
        assert r.status_code == 201, r.text
        shas.append(r.json()["sha256"])
    # run until the three are scored and a few loop candidates were evaluated
    deadline = time.monotonic() + 300  # evaluations take seconds each, more on a busy machine
    while time.monotonic() < deadline:
        coord.loop.step(0.2)
        with coord.factory() as s:
            evals = s.scalar(select(func.count()).select_from(m.Evaluation))
        if evals >= 6:
            break
    assert evals >= 6
    # leave one candidate dispatched but unfinished, as a crash between dispatching and
    # finishing would: a queued one (selection) or, when one passed selection by now, a
    # confirming one (the loop confirms before it proposes); both are plain rows
    with coord.factory() as s:
        steps_before = s.scalar(select(func.max(m.StrategyWeight.step)))
    taken = coord.loop._next_task()
    assert taken is not None
    taken_id = int(taken.key.split(":")[0])
    with coord.factory() as s:
        status_before = s.get(m.Candidate, taken_id).status
    assert status_before in (m.QUEUED, m.CONFIRMING)
    coord.close()

    again = make_coordinator(db_url)
    with again.factory() as s:
        assert {c.sha256 for c in s.scalars(select(m.Contribution))} == set(shas)
        assert all(c.status == m.SCORED for c in s.scalars(select(m.Contribution)))
        assert s.get(m.Candidate, taken_id).status == status_before
        assert s.scalar(select(func.max(m.StrategyWeight.step))) == steps_before
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        again.loop.step(0.2)
        with again.factory() as s:
            moved = s.get(m.Candidate, taken_id).status != status_before
            stepped = s.scalar(select(func.max(m.StrategyWeight.step))) > steps_before
        if moved and stepped:
            break
    with again.factory() as s:
        resumed = s.get(m.Candidate, taken_id)
        assert resumed.status != status_before
        # FAILED: a queued candidate whose parent another one replaced meanwhile
        assert resumed.status in (m.DONE, m.CONFIRMING, m.ACCEPTED, m.REJECTED, m.FAILED)
        assert s.scalar(select(func.max(m.StrategyWeight.step))) > steps_before
    status = TestClient(create_app(again)).get(f"/api/contributions/{shas[0]}").json()
    assert status["status"] == "scored" and status["score"] is not None
