"""A private Petals swarm on loopback: one DHT bootstrap peer and servers splitting the blocks.

Everything stays on this machine and offline: peers listen on ``/ip4/127.0.0.1/tcp/0`` (the
port is read back from the peer's log), servers join only the bootstrap peer given as
``--initial_peers`` (never the public swarm), with ``--no_auto_relay``,
``--skip_reachability_check``, a numeric ``--throughput`` (the default runs a speed test over
the internet) and an explicit ``--dht_prefix`` (needed for a local folder). ``--new_swarm``
is the single-peer alternative to a bootstrap peer: Petals makes it exclusive with
``--initial_peers``, so servers that join our bootstrap peer do not pass it.
The swarm's state (PIDs, which are also process-group ids, multiaddrs, prefix, logs) is a JSON
file so that ``mergenet petals down`` in another process can stop it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mergenet.petals import procs
from mergenet.petals.env import petals_environ, petals_module
from mergenet.petals.views import link_view, num_blocks

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
MADDR = r"(/ip4/127\.0\.0\.1/tcp/\d+/p2p/\w+)"
STATE_FILE = "swarm.json"


@dataclass
class Peer:
    """One peer process group: the bootstrap DHT (``blocks`` None) or a block server."""

    role: str
    pid: int
    maddr: str
    log: str
    blocks: tuple[int, int] | None = None
    prefix: str | None = None
    model_dir: str | None = None


@dataclass
class SwarmState:
    name: str
    prefix: str
    model_dir: str
    """The folder the client reads (config + embeddings/norm/head): a Petals view."""
    initial_peers: list[str]
    peers: list[Peer] = field(default_factory=list)

    def save(self, folder: Path) -> Path:
        path = folder / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, folder: Path) -> SwarmState:
        data = json.loads((folder / STATE_FILE).read_text())
        peers = [
            Peer(**{**p, "blocks": tuple(p["blocks"]) if p["blocks"] else None})
            for p in data.pop("peers")
        ]
        return cls(**data, peers=peers)


def split_blocks(n_blocks: int, n_servers: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal block ranges, one per server (earlier ones get the remainder)."""
    if not 1 <= n_servers <= n_blocks:
        raise ValueError(f"cannot split {n_blocks} blocks over {n_servers} servers")
    size, extra = divmod(n_blocks, n_servers)
    ranges, start = [], 0
    for i in range(n_servers):
        end = start + size + (1 if i < extra else 0)
        ranges.append((start, end))
        start = end
    return ranges


def start_dht(log: Path, timeout: float = 60.0) -> Peer:
    """The bootstrap peer every server and client joins."""
    maddr_file = log.with_suffix(".maddr")
    argv = [*petals_module("dht"), "--host-maddrs", LOOPBACK, "--maddr-file", str(maddr_file)]
    proc = procs.spawn(argv, log, petals_environ())
    try:
        m = procs.wait_for_log(proc, log, r"visible multiaddresses: " + MADDR, timeout)
    except BaseException:
        procs.stop_group(proc.pid)
        raise
    return Peer("dht", proc.pid, m.group(1), str(log))


def server_argv(
    model_dir: Path, blocks: tuple[int, int], prefix: str, initial_peers: list[str]
) -> list[str]:
    """``run_server`` flags for an offline CPU float32 server on loopback."""
    return [
        *petals_module("server"),
        str(model_dir),
        "--initial_peers",
        *initial_peers,
        "--dht_prefix",
        prefix,
        "--block_indices",
        f"{blocks[0]}:{blocks[1]}",
        "--host_maddrs",
        LOOPBACK,
        "--device",
        "cpu",
        "--torch_dtype",
        "float32",
        "--quant_type",
        "none",
        "--throughput",
        "1",
        "--no_auto_relay",
        "--skip_reachability_check",
        "--num_handlers",
        "2",
    ]


def spawn_server(
    model_dir: Path, blocks: tuple[int, int], prefix: str, initial_peers: list[str], log: Path
) -> subprocess.Popen[bytes]:
    return procs.spawn(server_argv(model_dir, blocks, prefix, initial_peers), log, petals_environ())


def await_server(
    proc: subprocess.Popen[bytes],
    log: Path,
    blocks: tuple[int, int],
    prefix: str,
    model_dir: Path,
    timeout: float,
) -> Peer:
    """Wait for the server's ``Started`` line; its multiaddr is logged before it."""
    procs.wait_for_log(proc, log, r"\[INFO\] Started", timeout)
    m = procs.wait_for_log(proc, log, r"Running a server on \['" + MADDR, 1.0)
    return Peer("server", proc.pid, m.group(1), str(log), blocks, prefix, str(model_dir))


def start_servers(
    parts: list[tuple[Path, tuple[int, int]]],
    prefix: str,
    initial_peers: list[str],
    log_dir: Path,
    timeout: float = 180.0,
) -> list[Peer]:
    """Start one server per ``(folder, block range)``, in parallel; all or none."""
    started = []
    try:
        for folder, blocks in parts:
            log = log_dir / f"server-{prefix}-{blocks[0]}-{blocks[1]}.log"
            started.append((spawn_server(folder, blocks, prefix, initial_peers, log), log))
        return [
            await_server(p, log, blocks, prefix, folder, timeout)
            for (p, log), (folder, blocks) in zip(started, parts, strict=True)
        ]
    except BaseException:
        for p, _ in started:
            procs.stop_group(p.pid)
        raise


def swarm_dir(state_root: Path, name: str) -> Path:
    return Path(state_root) / name


def up(
    model_dir: Path,
    state_root: Path,
    *,
    name: str = "core",
    prefix: str | None = None,
    servers: int = 2,
    timeout: float = 180.0,
) -> SwarmState:
    """Start a bootstrap peer and ``servers`` servers splitting ``model_dir``'s blocks."""
    folder = swarm_dir(state_root, name)
    if (folder / STATE_FILE).exists():
        raise RuntimeError(f"swarm {name!r} is already up ({folder / STATE_FILE}); run down first")
    if folder.exists():
        shutil.rmtree(folder)
    view = link_view(Path(model_dir), folder / "model")
    ranges = split_blocks(num_blocks(view), servers)
    prefix = prefix or name
    dht = start_dht(folder / "logs" / "dht.log")
    state = SwarmState(name, prefix, str(view), [dht.maddr], [dht])
    state.save(folder)
    try:
        state.peers += start_servers(
            [(view, r) for r in ranges], prefix, [dht.maddr], folder / "logs", timeout
        )
    except BaseException:
        down(state_root, name)
        raise
    state.save(folder)
    return state


def down(state_root: Path, name: str = "core") -> list[Peer]:
    """Stop every peer group of the swarm (servers first) and forget its state."""
    folder = swarm_dir(state_root, name)
    if not (folder / STATE_FILE).exists():
        return []
    state = SwarmState.load(folder)
    for peer in sorted(state.peers, key=lambda p: p.role == "dht"):
        procs.stop_group(peer.pid)
    (folder / STATE_FILE).unlink()
    return state.peers
