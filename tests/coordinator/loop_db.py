"""A loop database for the fake-pool tests: a base version and one contribution per sha256,
each from its own address (``0x…`` numbered from ``first_address``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import models as m
from mergenet.db import make_engine, make_session_factory, transaction
from mergenet.migrate import upgrade


def seeded_loop_db(
    tmp_path: Path, base: str, shas: Sequence[str], *, first_address: int = 0, **fields: Any
) -> Iterator[sessionmaker[Session]]:
    """Yield a session factory over a migrated SQLite file; ``fields`` go to every
    contribution (e.g. ``status="scored"``). The engine is disposed afterwards."""
    engine = make_engine(f"sqlite:///{tmp_path / 'loop.db'}")
    upgrade(engine)
    f = make_session_factory(engine)
    with transaction(f) as s:
        s.add(m.Version(hash=base, weights_path="versions/base", selection_seed=1))
        for i, sha in enumerate(shas):
            address = f"0x{i + first_address:040x}"
            s.add(m.Contributor(address=address))
            s.flush()
            s.add(
                m.Contribution(
                    sha256=sha,
                    address=address,
                    parent_hash=base,
                    nonce=i,
                    signature="0x",
                    size_bytes=1,
                    relative_norm=0.01,
                    **fields,
                )
            )
    yield f
    engine.dispose()
