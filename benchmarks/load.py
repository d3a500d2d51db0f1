"""Load (issue 19, item 6): N concurrent submitters for T seconds, valid and invalid uploads
mixed, and M live-page viewers holding the event stream ``/api/events``, against a real
``mergenet coordinator up`` on 127.0.0.1. Bounded: it stops itself after T seconds (plus a
drain) and never sends more than ``--max-requests``.

    python benchmarks/load.py --submitters 100 --viewers 200 --seconds 60

Each submitter loops: GET the current version (the parent), then one upload of a kind drawn
from ``MIX``: a valid signed upload (a distinct small LoRA adapter on the current
version), a bad signature (signed by another key), a wrong parent, a malformed file
(random bytes), or an oversize body (cap + 1 MiB, refused by ``Content-Length``). At the end
every 201's sha256 must be recorded (``GET /api/contributions/{sha256}`` → 200) and no answer may
be a 5xx. The table gives count, status codes, p50/p99 latency and throughput per route class.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import contextlib

from reliability_kit import Coordinator, WorldFiles, account

MIX = (("valid", 0.35), ("bad signature", 0.2), ("wrong parent", 0.2), ("malformed", 0.2))
OVERSIZE_SHARE = 0.05


@dataclass
class Stats:
    """Latencies and status codes per route class."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    acked: list[str] = field(default_factory=list)
    events: int = 0
    viewers_connected: int = 0
    requests: int = 0

    def add(self, route: str, seconds: float, code: str) -> None:
        self.latency[route].append(seconds)
        self.codes[route][code] += 1
        self.requests += 1

    def server_errors(self) -> int:
        return sum(n for c in self.codes.values() for k, n in c.items() if k.startswith("5"))


def small_deltas(world: WorldFiles, n: int, seed: int = 0) -> list[Upload]:
    """``n`` distinct valid uploads: a PEFT LoRA adapter (r = 1 on ``q_proj``) on the world's
    base, with a fresh random ``lora_B`` each time. A dense delta must carry every tensor of
    the parent (10 MB on the world), an adapter a few KiB."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.numpy import load, save
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(world.base_dir, dtype="float32")
    peft = get_peft_model(model, LoraConfig(r=1, lora_alpha=2, target_modules=["q_proj"]))
    with tempfile.TemporaryDirectory() as tmp:
        peft.save_pretrained(tmp)
        weights = load((Path(tmp) / "adapter_model.safetensors").read_bytes())
        config = (Path(tmp) / "adapter_config.json").read_bytes()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        fresh = {  # a fresh random lora_B: the near-copy check (cosine) sees distinct deltas
            k: (rng.normal(0, 0.01, v.shape) if "lora_B" in k else v).astype(v.dtype)
            for k, v in weights.items()
        }
        out.append(Upload(save(fresh), config))
    return out


@dataclass(frozen=True)
class Upload:
    """An adapter's weights file and its config (``config`` empty: a dense file)."""

    weights: bytes
    config: bytes = b""

    @property
    def sha256(self) -> str:
        from mergenet.protocol.signing import adapter_sha256

        digest = hashlib.sha256(self.weights).hexdigest()
        return adapter_sha256(self.config, digest) if self.config else digest

    def files(self) -> dict[str, tuple[str, io.BytesIO]]:
        files = {"file": ("adapter_model.safetensors", io.BytesIO(self.weights))}
        if self.config:
            files["adapter_config"] = ("adapter_config.json", io.BytesIO(self.config))
        return files


def _form(
    who: int, up: Upload, parent: str, nonce: int, domain: Any, signer: int | None = None
) -> dict:
    """The form for ``up`` signed for the coordinator's EIP-712 ``domain`` (by ``signer``'s key
    when it differs: a bad signature)."""
    from mergenet.protocol.signing import sign_submission

    key = account(signer if signer is not None else who)
    sig = sign_submission(key, up.sha256, parent, nonce, domain)
    return {
        "address": account(who).address,
        "parent_hash": parent,
        "nonce": str(nonce),
        "signature": sig,
    }


@dataclass
class Load:
    http: httpx.AsyncClient
    deltas: list[Upload]
    template: Upload
    oversize: bytes
    stats: Stats
    deadline: float
    max_requests: int
    rng: random.Random
    domain: Any
    """The coordinator's EIP-712 signing domain (``GET /api/info``)."""

    async def timed(self, route: str, coro: Any) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = await coro
        except httpx.HTTPError as exc:
            self.stats.add(route, time.perf_counter() - t0, type(exc).__name__)
            return None
        self.stats.add(route, time.perf_counter() - t0, str(r.status_code))
        return r

    async def submitter(self, who: int) -> None:
        nonce = 0
        while time.monotonic() < self.deadline and self.stats.requests < self.max_requests:
            r = await self.timed(
                "GET /api/versions/current", self.http.get("/api/versions/current")
            )
            if r is None or r.status_code != 200:
                await asyncio.sleep(0.5)
                continue
            parent = r.json()["hash"]
            nonce += 1
            await self.upload(who, parent, nonce)

    async def upload(self, who: int, parent: str, nonce: int) -> None:
        """One upload of a kind drawn from ``MIX`` (or oversize); invalid kinds reuse a valid
        adapter so that only the named defect is wrong."""
        kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        if self.rng.random() < OVERSIZE_SHARE:
            kind = "oversize"
        up = self.template
        if kind == "valid":
            if not self.deltas:
                kind = "malformed"  # the valid budget is spent: keep the mix's rate
            else:
                up = self.deltas.pop()
        if kind == "malformed":
            up = Upload(self.rng.randbytes(self.rng.randrange(16, 4096)))
        elif kind == "oversize":
            up = Upload(self.oversize)
        form = await asyncio.to_thread(self._form, kind, who, up, parent, nonce)
        post = self.http.post("/api/contributions", data=form, files=up.files())
        r = await self.timed(f"POST upload: {kind}", post)
        if r is not None and r.status_code == 201:
            self.stats.acked.append(r.json()["sha256"])

    def _form(self, kind: str, who: int, up: Upload, parent: str, nonce: int) -> dict:
        if kind == "bad signature":
            return _form(who, up, parent, nonce, self.domain, signer=who + 1000)
        if kind == "wrong parent":
            return _form(who, up, self.rng.randbytes(32).hex(), nonce, self.domain)
        return _form(who, up, parent, nonce, self.domain)

    async def viewer(self, i: int) -> None:
        """Hold ``/api/events`` open until the deadline, counting events; time to the first
        byte (the ``hello`` event) is the route's latency."""
        t0 = time.perf_counter()
        try:
            async with self.http.stream("GET", "/api/events", timeout=30) as r:
                first = True
                async for line in r.aiter_lines():
                    if first:
                        self.stats.add(
                            "GET /api/events (first event)",
                            time.perf_counter() - t0,
                            str(r.status_code),
                        )
                        self.stats.viewers_connected += 1
                        first = False
                    if line.startswith("event:"):
                        self.stats.events += 1
                    if time.monotonic() >= self.deadline:
                        return
        except httpx.HTTPError as exc:
            self.stats.add(
                "GET /api/events (first event)", time.perf_counter() - t0, type(exc).__name__
            )


async def _bounded(coro: Any, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(coro, timeout=max(seconds, 0.1))


async def drive(url: str, opts: Options, world: WorldFiles) -> tuple[Stats, float]:
    """Run the submitters and viewers against ``url``; then check every 201 is recorded."""
    stats = Stats()
    deltas = await asyncio.to_thread(small_deltas, world, opts.max_valid + 1, opts.seed)
    oversize = bytes(opts.oversize_bytes)
    limits = httpx.Limits(max_connections=opts.submitters + opts.viewers + 10)
    async with httpx.AsyncClient(base_url=url, timeout=opts.timeout, limits=limits) as http:
        from mergenet.protocol.signing import SigningDomain

        info = (await http.get("/api/info")).raise_for_status().json()
        domain = SigningDomain.from_json(info["signing_domain"])
        t0 = time.monotonic()
        load = Load(
            http,
            deltas[1:],
            deltas[0],
            oversize,
            stats,
            t0 + opts.seconds,
            opts.max_requests,
            random.Random(opts.seed),
            domain,
        )
        tasks = [load.submitter(i) for i in range(opts.submitters)]
        tasks += [_bounded(load.viewer(i), opts.seconds + 1) for i in range(opts.viewers)]
        await _bounded(asyncio.gather(*tasks), opts.seconds + opts.timeout + 5)
        elapsed = time.monotonic() - t0
        missing = []
        for sha in stats.acked:
            r = await http.get(f"/api/contributions/{sha}")
            if r.status_code != 200:
                missing.append(sha)
        stats.codes["lost (201 not recorded)"]["count"] = len(missing)
    return stats, elapsed


@dataclass
class Options:
    submitters: int = 100
    viewers: int = 200
    seconds: float = 60.0
    max_requests: int = 50_000
    max_valid: int = 400
    oversize_bytes: int = 0
    timeout: float = 60.0
    seed: int = 0


def table(stats: Stats, elapsed: float) -> str:
    rows = [
        "| route class | requests | status codes | p50 ms | p99 ms | per s |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for route in sorted(stats.latency):
        lat = sorted(stats.latency[route])
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(stats.codes[route].items()))
        rows.append(
            f"| {route} | {len(lat)} | {codes} | {p50:.0f} | {p99:.0f} | {len(lat) / elapsed:.1f} |"
        )
    return "\n".join(rows)


def run_load(world: WorldFiles, work: Path, opts: Options) -> tuple[Stats, float]:
    """Start a coordinator on ``world`` (SQLite, one evaluation worker), drive it, stop it."""
    coord = Coordinator(world, work / "data", {"MERGENET_COORDINATOR_WORKERS": "1"})
    coord.start()
    try:
        if not opts.oversize_bytes:
            weights = sum(p.stat().st_size for p in world.base_dir.glob("*.safetensors"))
            opts.oversize_bytes = weights + (4 << 20)
        stats, elapsed = asyncio.run(drive(coord.url, opts, world))
        alive = coord.proc is not None and coord.proc.poll() is None
        stats.codes["coordinator alive at the end"]["yes" if alive else "NO"] = 1
        return stats, elapsed
    finally:
        coord.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--submitters", type=int, default=100)
    p.add_argument("--viewers", type=int, default=200)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--max-requests", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None)
    a = p.parse_args()
    opts = Options(a.submitters, a.viewers, a.seconds, a.max_requests, seed=a.seed)
    if a.workdir is not None:  # kept: the coordinator's log is workdir/coordinator.log
        stats, elapsed = run_load(WorldFiles.find(), a.workdir, opts)
    else:
        with tempfile.TemporaryDirectory(prefix="load-") as work:
            stats, elapsed = run_load(WorldFiles.find(), Path(work), opts)
    print(table(stats, elapsed))
    lost = stats.codes["lost (201 not recorded)"]["count"]
    print(
        f"\n{stats.requests} requests in {elapsed:.0f} s ({stats.requests / elapsed:.1f}/s), "
        f"5xx {stats.server_errors()}, 201s {len(stats.acked)}, lost {lost}, viewers connected "
        f"{stats.viewers_connected}/{opts.viewers}, events {stats.events}; cpu: {cpu_name()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    sys.exit(1 if stats.server_errors() or lost else 0)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
