"""What the chaos and load benchmarks share: the world's files, a real ``mergenet coordinator
up`` process (its own session, so kill -9 takes its workers too), signed uploads, delta variants,
and services the run starts itself (anvil with a state file, Redis, a private PostgreSQL).

Everything binds 127.0.0.1 and is stopped by whoever started it. Nothing here touches the
machine's own PostgreSQL or Redis services: restarting those would break other users of the
machine, so a run that restarts PostgreSQL or Redis starts private instances on free ports.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CHAIN_ID = 31337
PASSWORD = "chaos-password"  # a throwaway keystore password for a throwaway local chain


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        time.sleep(every)
    return False


@dataclass(frozen=True)
class WorldFiles:
    """The files of a built model world the coordinator and the submitters need."""

    base_dir: Path
    dev_rows: Path
    heldout_rows: Path
    deltas: tuple[Path, ...]

    @classmethod
    def from_world(cls, world: Any) -> WorldFiles:
        """From the tests' ``world`` fixture (an ``ecosystem.world.World``)."""
        names = world.contributor_names
        return cls(
            world.base_dir,
            world.dharma_path("dev"),
            world.dharma_path("heldout"),
            tuple(world.delta_path(n) for n in names),
        )

    @classmethod
    def find(cls, root: Path | None = None) -> WorldFiles:
        """The newest built world under the cache (``mergenet world build`` makes one)."""
        root = root or Path(os.environ.get("MERGENET_CACHE_DIR", "~/.cache/mergenet")).expanduser()
        for d in sorted(glob.glob(str(root / "worlds" / "world-*")), key=os.path.getmtime)[::-1]:
            deltas = sorted(Path(d).glob("contributors/*/delta.safetensors"))
            dev = Path(d) / "dharma" / "dev.jsonl"
            if deltas and dev.exists() and (Path(d) / "base" / "config.json").exists():
                return cls(
                    Path(d) / "base", dev, Path(d) / "dharma" / "heldout.jsonl", tuple(deltas)
                )
        raise FileNotFoundError(f"no built world under {root}/worlds: run `mergenet world build`")


def account(i: int) -> Any:
    """A deterministic throwaway key (never a real one); index 0 is key 0x…01."""
    from eth_account import Account

    return Account.from_key((i + 1).to_bytes(32, "big"))


def served_domain(url: str) -> Any:
    """The EIP-712 signing domain the coordinator at ``url`` serves in ``GET /api/info``."""
    from mergenet.protocol.signing import SigningDomain

    info = httpx.get(url.rstrip("/") + "/api/info", timeout=30).raise_for_status().json()
    return SigningDomain.from_json(info["signing_domain"])


def signed_form(acct: Any, path: Path, parent: str, nonce: int, domain: Any) -> dict[str, str]:
    """Upload form fields signed for the coordinator's ``domain`` (see :func:`served_domain`)."""
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import sign_submission

    sig = sign_submission(acct, sha256_file(path), parent, nonce, domain)
    return {"address": acct.address, "parent_hash": parent, "nonce": str(nonce), "signature": sig}


def make_variants(deltas: tuple[Path, ...], n: int, out: Path, seed: int = 0) -> list[Path]:
    """``n`` valid, distinct deltas: two world deltas mixed with random weights in [0.2, 0.8],
    plus Gaussian noise of 0.3× the mix's norm per tensor, so that no two are near copies
    (the coordinator refuses a delta with cosine ≥ 0.99 to an earlier one: 409)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    loaded = [load_file(d) for d in deltas]
    paths = []
    for i in range(n):
        a, b = rng.choice(len(loaded), size=2, replace=len(loaded) < 2)
        wa, wb = rng.uniform(0.2, 0.8, size=2)
        tensors = {}
        for k, v in loaded[a].items():
            mix = wa * v + wb * loaded[b][k]
            noise = rng.standard_normal(v.shape)
            scale = 0.3 * float(np.linalg.norm(mix)) / max(float(np.linalg.norm(noise)), 1e-12)
            tensors[k] = (mix + scale * noise).astype(v.dtype)
        path = out / f"variant-{i:03d}.safetensors"
        save_file(tensors, path)
        paths.append(path)
    return paths


@dataclass
class Coordinator:
    """``mergenet coordinator up`` on 127.0.0.1 in its own session; restartable on one port."""

    world: WorldFiles
    data_dir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MERGENET_DATABASE_URL", None)
        env.pop("MERGENET_CHAIN_URL", None)
        return (
            env
            | {
                "MERGENET_DATA_DIR": str(self.data_dir),
                "MERGENET_COORDINATOR_BASE_DIR": str(self.world.base_dir),
                "MERGENET_COORDINATOR_DEV_ROWS": str(self.world.dev_rows),
                "MERGENET_COORDINATOR_HELDOUT_ROWS": str(self.world.heldout_rows),
                "MERGENET_KEYSTORE_PASSWORD": PASSWORD,
            }
            | self.env_extra
        )

    def start(self, timeout: float = 240) -> float:
        """Start and wait for ``/healthz``; the seconds it took."""
        t0 = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir.parent / "coordinator.log").open("ab")
        cmd = [sys.executable, "-m", "mergenet.cli", "coordinator", "up"]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        ok = wait_for(self._healthy, timeout, every=0.3)
        if not ok:
            self.kill()
            tail = (self.data_dir.parent / "coordinator.log").read_text()[-3000:]
            raise RuntimeError(f"coordinator did not come up:\n{tail}")
        return time.monotonic() - t0

    def _healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            tail = (self.data_dir.parent / "coordinator.log").read_text()[-3000:]
            raise RuntimeError(f"coordinator exited:\n{tail}")
        return httpx.get(self.url + "/healthz", timeout=2).status_code == 200

    def kill(self) -> None:
        """kill -9 the coordinator and its evaluation workers (its whole process group)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)
        self.kill()


@dataclass
class Anvil:
    """anvil on a fixed port with a state file, so a restart keeps the chain (SIGINT dumps)."""

    state_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from mergenet.rewards.anvil import foundry_binary, rpc_chain_id

        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = self.state_dir / "state.json"
        cmd = [str(foundry_binary("anvil")), "--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--chain-id", str(CHAIN_ID), "--quiet", "--dump-state", str(state)]
        if state.exists():
            cmd += ["--load-state", str(state)]
        log = (self.state_dir / "anvil.log").open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if not wait_for(lambda: rpc_chain_id(self.url, timeout=0.5) == CHAIN_ID, 30, 0.1):
            raise RuntimeError("anvil did not answer")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


def chain_settings(data_dir: Path, anvil: Anvil) -> Any:
    """Create the coordinator key, fund it on ``anvil`` and deploy (``mergenet chain up``)."""
    from pydantic import SecretStr

    from mergenet.config import Settings
    from mergenet.rewards.chain import chain_up, coordinator_account
    from mergenet.rewards.client import connect

    settings = Settings(
        data_dir=data_dir, chain_url=anvil.url, keystore_password=SecretStr(PASSWORD)
    )
    owner = coordinator_account(settings, create=True)
    fund(anvil.url, owner.address)
    chain_up(settings)
    connect(anvil.url)
    return settings


def fund(rpc_url: str, address: str, wei: int = 10**21) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance", "params": [address, hex(wei)]}
    httpx.post(rpc_url, json=body, timeout=10).raise_for_status()


@dataclass
class Redis:
    """A private redis-server (append-only file, so a restart keeps Celery's queue)."""

    dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--dir", str(self.dir), "--appendonly", "yes", "--save", ""]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for(lambda: _tcp_open(self.port), 20, 0.1):
            raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def restart(self) -> None:
        self.stop()
        self.start()


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Postgres:
    """A private PostgreSQL cluster (initdb, trust auth, 127.0.0.1, a free port) run as the
    ``postgres`` user when this process is root (initdb refuses root)."""

    dir: Path
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        if not (self.dir / "PG_VERSION").exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.dir, "postgres", "postgres")
            self._run("initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl", "-D", str(self.dir), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.dir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        """An immediate stop (no checkpoint: recovery replays the WAL), then a start."""
        self.stop("immediate")
        self.start()


class Workers:
    """``mergenet worker`` processes (Celery, solo pool) for the ``--infra`` run."""

    def __init__(self, coord: Coordinator, work: Path, redis_url: str, n: int):
        self.coord, self.work, self.redis_url = coord, work, redis_url
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * n

    def start(self, i: int) -> None:
        cmd = [
            sys.executable,
            "-m",
            "mergenet.cli",
            "worker",
            "--coordinator",
            self.coord.url,
            "--redis-url",
            self.redis_url,
            "--concurrency",
            "1",
            "--cache-dir",
            str(self.work / f"worker-{i}"),
        ]
        path = self.work / f"worker-{i}.log"
        start = path.stat().st_size if path.exists() else 0
        with path.open("ab") as log:
            proc = subprocess.Popen(cmd, env=self.coord.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[i] = proc
        wait_for(lambda: proc.poll() is not None or b" ready." in path.read_bytes()[start:], 180)

    def kill9(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None:
            proc.kill()
            proc.wait()
        self.start(i)

    def revive(self) -> str:
        """Restart workers that exited: a worker refuses to start while the coordinator is
        down (exit 2, by design), so one booting across a kill must be started again."""
        dead = [i for i, p in enumerate(self.procs) if p is not None and p.poll() is not None]
        for i in dead:
            self.start(i)
        return f"; worker {dead} had exited, restarted" if dead else ""

    def stop(self) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
