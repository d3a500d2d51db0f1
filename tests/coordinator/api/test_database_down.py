"""A database that refuses connections (PostgreSQL restarting) is a 503 with a message, not a
bare 500: the chaos run saw unhandled ``psycopg.OperationalError``s during a restart."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from mergenet.coordinator.api.errors import install


def test_an_unreachable_database_answers_503_with_a_detail(tmp_path) -> None:
    app = FastAPI()
    install(app)
    # a SQLite file inside a folder that does not exist: connecting raises OperationalError
    engine = create_engine(f"sqlite:///{tmp_path}/missing/db.sqlite")

    @app.get("/count")
    def count() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("select 1")).scalar_one())

    r = TestClient(app, raise_server_exceptions=False).get("/count")
    assert r.status_code == 503
    assert "database is unavailable" in r.json()["detail"]
