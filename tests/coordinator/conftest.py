"""Fixtures for the coordinator tests: databases (SQLite and PostgreSQL), a coordinator on the
model world, signing keys and a helper that signs and posts a delta.

PostgreSQL runs at 127.0.0.1:5432, database ``test`` (trust auth); each test gets its own
schema, dropped afterwards. ``MERGENET_TEST_TINY_WORLD=1`` swaps the default world for a tiny
one (a fast local iteration switch; CI uses the real default world).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_DSN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TEST_NETWORK_ID = "4e" * 32
"""The network id ``make_coordinator`` gives its coordinators (so forms can be signed offline)."""


def _tiny_spec():  # type: ignore[no-untyped-def]
    from mergenet.ecosystem.spec import ModelSpec, WorldSpec

    return WorldSpec(
        model=ModelSpec(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2
        ),
        base_steps=30,
        contributor_steps=8,
        train_rows_per_task=300,
        eval_rows_per_task=16,
        heldout_rows_per_task=16,
        batch_size=8,
        seq_len=128,
    )


@pytest.fixture(scope="session")
def cworld(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The world the coordinator tests run on (the real default world unless overridden)."""
    if os.environ.get("MERGENET_TEST_TINY_WORLD"):
        from mergenet.config import Settings
        from mergenet.ecosystem.world import build_world

        return build_world(_tiny_spec(), Settings().world_root)
    return request.getfixturevalue("world")


def _pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(
            "host=127.0.0.1 port=5432 dbname=test user=postgres", connect_timeout=3
        ).close()
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database: a SQLite file, or a private schema in PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'coordinator.db'}"
        return
    if not _pg_available():
        pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (database test)")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_DSN)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_DSN}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def coordinator_settings(world: Any, **kw: Any):  # type: ignore[no-untyped-def]
    from mergenet.coordinator.settings import CoordinatorSettings

    return CoordinatorSettings(
        base_dir=world.base_dir,
        dev_rows=world.dharma_path("dev"),
        heldout_rows=world.dharma_path("heldout"),
        **kw,
    )


@pytest.fixture
def make_coordinator(cworld: Any, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Open coordinators on ``cworld`` (closed at teardown); no loop thread is started."""
    from mergenet.config import Settings
    from mergenet.coordinator.runtime import Coordinator

    opened: list[Coordinator] = []

    def make(url: str | None = None, data_dir: Path | None = None, **kw: Any) -> Coordinator:
        kw.setdefault("network_id", TEST_NETWORK_ID)
        settings = Settings(
            data_dir=data_dir or tmp_path / "data",
            database_url=url,
            network_id=kw.pop("network_id"),
        )
        kw.setdefault("workers", 0)
        coord = Coordinator(settings, coordinator_settings(cworld, **kw)).open()
        opened.append(coord)
        return coord

    yield make
    for c in opened:
        c.close()


def account(i: int):  # type: ignore[no-untyped-def]
    """A deterministic test key (never a real one)."""
    from eth_account import Account

    return Account.from_key((i + 1).to_bytes(32, "big"))


def local_domain(chain_id: int = 31337, network_id: str = TEST_NETWORK_ID):  # type: ignore[no-untyped-def]
    """The EIP-712 domain of a chainless test coordinator made by ``make_coordinator``."""
    from mergenet.protocol.signing import ZERO_ADDRESS, SigningDomain

    return SigningDomain(chain_id, ZERO_ADDRESS, network_id)


def signed_form(
    acct: Any, path: Path, parent: str, nonce: int, domain: Any = None
) -> dict[str, str]:
    """The form fields of an upload signed for ``domain`` (default: :func:`local_domain`)."""
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import sign_submission

    sig = sign_submission(acct, sha256_file(path), parent, nonce, domain or local_domain())
    return {
        "address": acct.address,
        "parent_hash": parent,
        "nonce": str(nonce),
        "signature": sig,
    }


def submit_world_deltas(http: Any, world: Any) -> list[str]:
    """Every world contributor signs and uploads its delta to the current version, under the
    EIP-712 domain the coordinator serves (a server started by a test makes its own network id);
    sha256s."""
    from mergenet.protocol.signing import SigningDomain

    parent = http.get("/api/versions/current").json()["hash"]
    domain = SigningDomain.from_json(http.get("/api/info").json()["signing_domain"])
    shas = []
    for i, name in enumerate(world.contributor_names):
        path = world.delta_path(name)
        with path.open("rb") as fh:
            r = http.post(
                "/api/contributions",
                data=signed_form(account(i), path, parent, 1, domain),
                files={"file": ("delta.safetensors", fh)},
            )
        assert r.status_code == 201, r.text
        shas.append(r.json()["sha256"])
    return shas
