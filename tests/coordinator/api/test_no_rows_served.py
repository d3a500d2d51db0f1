"""No route serves decision rows, the row files, or an open row epoch's secret (issue 16).

Every GET route of the app is fetched (path parameters filled with the values an attacker
would try: the row files' hashes, the version hash, epoch 1) after the loop's source has
drawn a decision sample; no response may contain the open epoch's secret or any row of that
sample, and the old ``GET /api/rows/{sha256}`` answers 404.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import select

from mergenet.coordinator import models as m
from mergenet.coordinator.app import ROUTERS
from mergenet.coordinator.row_epochs import current_row_epoch
from mergenet.db import transaction
from mergenet.protocol.hashes import sha256_file


def _get_paths() -> list[str]:
    paths = ["/docs", "/redoc", "/openapi.json"]
    for module in ROUTERS:
        for route in module.router.routes:
            if isinstance(route, APIRoute) and "GET" in route.methods:
                paths.append(route.path)
    return paths


def _fill(path: str, values: list[str]) -> list[str]:
    params = re.findall(r"{(\w+)(?::\w+)?}", path)
    if not params:
        return [path]
    out: list[str] = []
    for v in values:
        out += _fill(re.sub(r"{\w+(?::\w+)?}", v, path, count=1), values)
    return out[:12]


def _text(client: httpx.Client, path: str) -> str:
    try:
        with client.stream("GET", path, timeout=httpx.Timeout(10, read=1.0)) as r:
            chunks = []
            for chunk in r.iter_bytes():
                chunks.append(chunk)
                if r.headers.get("content-type", "").startswith("text/event-stream"):
                    break
            return b"".join(chunks).decode("utf-8", "replace")
    except httpx.ReadTimeout:  # an event stream with nothing to say yet
        return ""


def test_no_route_serves_decision_rows_or_the_open_secret(coordinator: Any, server: str) -> None:
    with transaction(coordinator.factory) as s:
        epoch = current_row_epoch(s)
        secret, number = epoch.secret, epoch.number
        sample = coordinator.decision_rows.sample(s, "selection", 5, n=4)
    assert coordinator.decision_rows.source == "generator" and sample.data
    needles = {secret} | {r["input"].split("\nA.")[0] for r in sample.data}
    file_shas = [sha256_file(p) for p in coordinator.inputs.row_sets.values()]
    with coordinator.factory() as s:
        versions = list(s.scalars(select(m.Version.hash)))
    values = [*file_shas, *versions, str(number), "0x" + "0" * 40]
    assert not any(p.startswith("/api/rows") for p in _get_paths())
    fetched = 0
    with httpx.Client(base_url=server) as client:
        for sha in file_shas:
            assert client.get(f"/api/rows/{sha}").status_code == 404
        assert not [p for p in client.get("/openapi.json").json()["paths"] if "/rows" in p]
        for route in _get_paths():
            for path in _fill(route, values):
                text = _text(client, path)
                fetched += 1
                leaked = [n[:40] for n in needles if n in text]
                assert not leaked, f"GET {path} serves {leaked}"
    assert fetched > 15
