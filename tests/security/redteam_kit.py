"""The red-team kit: a live coordinator on loopback with rewards on a local anvil chain, and the
attacker's tools (delta transforms, fresh keys, signed uploads, route walking).

Everything here is what an attacker can do from outside: build files, sign them with keys it
makes, POST them, GET every route. The only inside view is the judge's: the coordinator's
SQLite file is read to regenerate the rows recorded evaluations were scored on.

A network is one ``mergenet coordinator up --chain`` process (one evaluation worker) on the
model world and a private anvil; :meth:`LiveNetwork.stop` stops both (tests register it in a
finalizer, so a failing test stops them too).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import torch
from safetensors.torch import load_file, save_file

from ..coordinator.conftest import account, signed_form
from ..coordinator.server import CoordinatorProcess

PASSWORD = "red-team-keystore-password"
Delta = dict[str, torch.Tensor]


# -- the attacker's transforms ---------------------------------------------------------------
def load(path: Path) -> Delta:
    return {k: v.float() for k, v in load_file(str(path)).items()}


def save(delta: Delta, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in delta.items()}, str(path))
    return path


def cosine(a: Delta, b: Delta) -> float:
    dot = sum(float((a[k] * b[k]).sum()) for k in a)
    na = math.sqrt(sum(float((v * v).sum()) for v in a.values()))
    nb = math.sqrt(sum(float((v * v).sum()) for v in b.values()))
    return dot / (na * nb)


def scaled(d: Delta, factor: float) -> Delta:
    return {k: v * factor for k, v in d.items()}


def noisy(d: Delta, cos: float, seed: int) -> Delta:
    """``d`` plus Gaussian noise sized so that every tensor's cosine with ``d`` is ``cos``
    (in expectation; noise in high dimension is orthogonal to ``d``)."""
    g = torch.Generator().manual_seed(seed)
    ratio = math.sqrt(1 / cos**2 - 1)
    out = {}
    for k, v in d.items():
        eps = torch.randn(v.shape, generator=g)
        out[k] = v + eps * (ratio * float(v.norm()) / max(float(eps.norm()), 1e-30))
    return out


def zeroed(d: Delta, name_part: str) -> Delta:
    """``d`` with every tensor whose name contains ``name_part`` set to zero."""
    return {k: torch.zeros_like(v) if name_part in k else v for k, v in d.items()}


def average(a: Delta, b: Delta) -> Delta:
    return {k: (a[k] + b[k]) / 2 for k in a}


def split_tensors(d: Delta) -> tuple[Delta, Delta]:
    """Two deltas that add up to ``d``, on disjoint halves of its tensors (by sorted name, so
    each half holds about half the layers; the other half's tensors are zero)."""
    names = sorted(d)
    first = set(names[0::2])
    one = {k: v if k in first else torch.zeros_like(v) for k, v in d.items()}
    two = {k: torch.zeros_like(v) if k in first else v for k, v in d.items()}
    return one, two


def junk(d: Delta, seed: int, relative: float = 0.02) -> Delta:
    """Noise with ``relative`` of ``d``'s norm per tensor: passes validation, adds nothing."""
    g = torch.Generator().manual_seed(seed)
    return {
        k: (e := torch.randn(v.shape, generator=g)) * (relative * float(v.norm()) / float(e.norm()))
        for k, v in d.items()
    }


# -- the live network ------------------------------------------------------------------------
@dataclass
class LiveNetwork:
    """A coordinator with rewards on chain, as the attacker sees it (HTTP only)."""

    world: Any
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    max_evaluations: int = 0
    anvil: Any = None
    server: CoordinatorProcess | None = None
    http: httpx.Client | None = None
    originals: dict[str, str] = field(default_factory=dict)
    """World contributor name -> sha256 of its honestly submitted delta."""
    _nonces: dict[str, int] = field(default_factory=dict)

    def start(self) -> LiveNetwork:
        from pydantic import SecretStr

        from mergenet.config import Settings
        from mergenet.rewards.anvil import start_anvil
        from mergenet.rewards.chain import chain_up, coordinator_account

        data = self.root / "data"
        self.anvil = start_anvil(log_path=self.root / "anvil.log")
        settings = Settings(
            data_dir=data, chain_url=self.anvil.rpc_url, keystore_password=SecretStr(PASSWORD)
        )
        owner = coordinator_account(settings, create=True)
        body = {"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance"}
        body["params"] = [owner.address, hex(10**21)]  # type: ignore[assignment]
        httpx.post(self.anvil.rpc_url, json=body, timeout=10).raise_for_status()
        chain_up(settings)
        env = {"MERGENET_CHAIN_URL": self.anvil.rpc_url, "MERGENET_KEYSTORE_PASSWORD": PASSWORD}
        self.server = CoordinatorProcess(
            self.world,
            data,
            workers=1,
            max_evaluations=self.max_evaluations,
            extra_env=env | self.env,
            extra_args=("--chain",),
        )
        self.server.start()
        self.http = self.server.client()
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.server is not None:
            self.server.stop()
        if self.anvil is not None:
            self.anvil.stop()

    @property
    def db(self) -> Path:
        return self.root / "data" / "mergenet.db"

    def get(self, path: str) -> httpx.Response:
        assert self.http is not None
        return self.http.get(path)

    def submit(self, key: int, path: Path) -> httpx.Response:
        """``account(key)`` signs ``path`` on the current version with its next nonce, posts."""
        from mergenet.protocol.signing import SigningDomain

        assert self.http is not None
        acct = account(key)
        parent = self.get("/api/versions/current").json()["hash"]
        domain = SigningDomain.from_json(self.get("/api/info").json()["signing_domain"])
        nonce = self._nonces[acct.address] = self._nonces.get(acct.address, 0) + 1
        with path.open("rb") as fh:
            return self.http.post(
                "/api/contributions",
                data=signed_form(acct, path, parent, nonce, domain),
                files={"file": ("delta.safetensors", fh)},
            )

    def contribution(self, sha: str) -> dict[str, Any]:
        r = self.get(f"/api/contributions/{sha}")
        assert r.status_code == 200, r.text
        return dict(r.json())

    def earned(self, key: int) -> int:
        """Base units accrued to ``account(key)`` in the ledger (what it will be able to claim)."""
        r = self.get(f"/api/rewards/{account(key).address}")
        assert r.status_code == 200, r.text
        accrued = r.json()["accrued"]
        return 0 if accrued is None else int(accrued["base_units"])

    def wait_scored(
        self, shas: Iterable[str], timeout: float, on_scored: Callable[[str], None] | None = None
    ) -> None:
        """Poll until every contribution has left the queue (scored or failed)."""
        todo = list(shas)
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for sha in list(todo):
                if self.contribution(sha)["status"] not in ("received", "scoring"):
                    todo.remove(sha)
                    if on_scored is not None:
                        on_scored(sha)
            time.sleep(0.3)
        assert not todo, f"not scored within {timeout:.0f} s: {[s[:12] for s in todo]}"

    def wait_queue_empty(self, timeout: float) -> None:
        """Until every stored contribution has been scored (or failed)."""
        shas = [c["sha256"] for c in self.get("/api/history").json()["contributions"]]
        self.wait_scored(shas, timeout)

    def attributing(self) -> bool:
        """Whether an accepted version's leave-one-out attribution (what pays) is pending:
        its evaluations do not count against the budget and run after it."""
        import sqlite3

        with sqlite3.connect(self.db) as conn:
            rows = conn.execute("select metrics from versions").fetchall()
        plans = [(json.loads(r[0]) if r[0] else {}).get("attribution") for r in rows]
        return any(isinstance(p, dict) and p.get("state") == "pending" for p in plans)

    def wait_idle(self, timeout: float) -> None:
        """Until the loop spent its budget, nothing is in flight and every accepted version's
        attribution is done."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h = self.get("/api/history").json()["evaluations"]
            spent = sum(e["purpose"] in ("selection", "confirmation") for e in h)
            busy = "evaluations_in_flight 0" not in self.get("/metrics").text
            if spent >= self.max_evaluations and not busy and not self.attributing():
                return
            time.sleep(1)
        raise AssertionError(f"the loop was not idle within {timeout:.0f} s")


# -- walking the routes ----------------------------------------------------------------------
def get_routes() -> list[str]:
    """Every GET path the coordinator's app serves (its routers, plus FastAPI's docs)."""
    from fastapi.routing import APIRoute

    from mergenet.coordinator.app import ROUTERS

    paths = ["/docs", "/redoc", "/openapi.json"]
    for module in ROUTERS:
        for route in module.router.routes:
            if isinstance(route, APIRoute) and "GET" in route.methods:
                paths.append(route.path)
    return paths


def fill(path: str, values: dict[str, list[str]]) -> list[str]:
    """``path`` with each ``{param}`` replaced by every value known for it (or a probe)."""
    import re

    params = re.findall(r"{(\w+)(?::\w+)?}", path)
    if not params:
        return [path]
    out = []
    for p in params[:1]:
        for v in values.get(p, ["0" * 64]):
            out += fill(re.sub(r"{" + p + r"(?::\w+)?}", v, path, count=1), values)
    return out


def body_texts(r: httpx.Response) -> list[str]:
    """The response as text, with gzip and tar members opened (a row could hide in one)."""
    raw = r.content
    texts = [raw.decode("utf-8", "replace")]
    if raw[:2] == b"\x1f\x8b":
        inner = gzip.decompress(raw)
        texts.append(inner.decode("utf-8", "replace"))
        try:
            with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
                for member in tar.getmembers():
                    f = tar.extractfile(member) if member.isfile() else None
                    if f is not None:
                        texts.append(f.read().decode("utf-8", "replace"))
        except tarfile.TarError:
            pass
    return texts


def row_needles(rows: Iterable[dict[str, Any]]) -> set[str]:
    """What would show that a row was served: its full input, raw and JSON-escaped."""
    out: set[str] = set()
    for row in rows:
        text = str(row["input"])
        out |= {text, json.dumps(text)[1:-1]}
    return out


def page_files() -> list[str]:
    from mergenet.coordinator.web.assets import PAGE_FILES

    return list(PAGE_FILES)


def read_rows(path: Path) -> list[dict[str, Any]]:
    from mergenet.protocol.jsonl import read_jsonl

    return [dict(r) for r in read_jsonl(path)]


def fetch_texts(net: LiveNetwork, path: str, stream_seconds: float = 3.0) -> list[str]:
    """GET ``path`` as an attacker would; an event stream is read for ``stream_seconds``."""
    assert net.http is not None
    timeout = httpx.Timeout(60, read=stream_seconds)
    with net.http.stream("GET", path, timeout=timeout) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            chunks: list[bytes] = []
            deadline = time.monotonic() + stream_seconds
            try:
                for chunk in r.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        break
            except httpx.ReadTimeout:
                pass
            return [b"".join(chunks).decode("utf-8", "replace")]
        r.read()
        return body_texts(r)


ANCHOR = "Answer:"


def leaked(texts: Iterable[str], needles: set[str]) -> bool:
    """Whether any needle occurs in any text. Row inputs end with ``Answer:``, so only the
    text before each ``Answer:`` is compared (a 5 MB script has none; a naive scan of 4,000
    needles over the version archive would take minutes)."""
    anchored = all(n.endswith(ANCHOR) for n in needles)
    lengths = sorted({len(n) for n in needles})
    for text in texts:
        if not anchored:
            if any(n in text for n in needles):
                return True
            continue
        at = text.find(ANCHOR)
        while at >= 0:
            end = at + len(ANCHOR)
            if any(text[end - n : end] in needles for n in lengths if n <= end):
                return True
            at = text.find(ANCHOR, end)
    return False
