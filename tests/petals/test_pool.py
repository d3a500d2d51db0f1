"""The coordinator's evaluation pool over a Petals swarm (issue 18, item 1), on the real world.

Bootstrap + two server peers per model on loopback, all started by ``PetalsEvaluationPool``:
the same recipe on the same rows scored by the in-process pool and through the swarm agrees
to 1e-4 in log-likelihood (per-token ppl, answer loss) and exactly in accuracy; the relative
distance from the peers' per-slice sums equals the local full merge's. A parent peer killed
between tasks costs a restart and a candidate peer killed mid-evaluation costs an attempt, not
a wrong result. ``close()`` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mergenet.petals import procs
from mergenet.protocol.evaluation import EvalOutcome, EvalTask, SampleSpec, WorkerEnv
from mergenet.protocol.hashes import sha256_file
from mergenet.protocol.jsonl import read_jsonl

pytestmark = [pytest.mark.world, pytest.mark.slow]
PARENT = "0" * 64
TOL = 1e-4


@pytest.fixture(scope="module")
def env(world: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[WorkerEnv, list[str]]:
    """A store folder: symlinks to the world's base and alice's and bob's deltas."""
    root = tmp_path_factory.mktemp("store")
    (root / "versions").mkdir()
    (root / "versions" / PARENT).symlink_to(world.base_dir)
    shas = []
    for name in ("alice", "bob"):
        sha = sha256_file(world.delta_path(name))
        (root / "deltas" / sha[:2]).mkdir(parents=True, exist_ok=True)
        (root / "deltas" / sha[:2] / f"{sha}.safetensors").symlink_to(world.delta_path(name))
        shas.append(sha)
    return WorkerEnv(store_root=str(root)), shas


def _wait(pool: Any, timeout: float) -> list[EvalOutcome]:
    deadline, out = time.monotonic() + timeout, []
    while pool.in_flight() and time.monotonic() < deadline:
        out += pool.poll(1.0)
    return out


def _kill_first_candidate_peer(pool: Any, killed: list[int], timeout: float = 400) -> None:
    """Stop a server peer of the first candidate the pool starts scoring (mid-evaluation)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with pool._lock:
            served = next(iter(pool._candidates), None)
        if served is not None:
            killed.append(served.peers[0].pid)
            procs.stop_group(served.peers[0].pid)
            return
        time.sleep(0.05)


def _agree(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert set(a["tasks"]) == set(b["tasks"]) and len(a["tasks"]) > 1
    for name, x in a["tasks"].items():
        y = b["tasks"][name]
        assert (x["n_rows"], x["acc_letter"], x["acc_choice"]) == (
            y["n_rows"],
            y["acc_letter"],
            y["acc_choice"],
        ), name
        assert abs(x["answer_loss"] - y["answer_loss"]) <= TOL, name
        assert abs(x["ppl"] - y["ppl"]) / x["ppl"] <= TOL, name


def test_the_swarm_scores_as_the_process_pool_does(
    world: Any, env: tuple[WorkerEnv, list[str]], petals_py: Path, tmp_path: Path
) -> None:
    from mergenet.petals.pool import PetalsEvaluationPool
    from mergenet.workers.local_pool import ProcessEvaluationPool

    worker_env, shas = env
    recipe = {
        "parent": PARENT,
        "strategy": "task_arithmetic",
        "contributions": [{"sha256": s, "weight": 0.7} for s in shas],
    }
    rows = tuple(read_jsonl(world.dharma_path("dev")))
    task = EvalTask("c1:selection", recipe, SampleSpec("dev", 2, 11, rows))
    local_pool = ProcessEvaluationPool(worker_env, workers=0)
    local_pool.submit(task)
    (local,) = _wait(local_pool, 300)
    local_pool.close()
    assert local.error is None, local.error

    before = {pid for pid, _ in procs.p2pd_processes()}
    pool = PetalsEvaluationPool(worker_env, tmp_path / "swarm", servers=2, start_timeout=240)
    groups: list[int] = []
    try:
        assert pool._dht is not None
        groups.append(pool._dht.pid)
        pool.submit(task)
        (remote,) = _wait(pool, 600)
        assert remote.error is None, remote.error
        assert remote.result is not None and remote.parent_result is not None
        assert local.result is not None and local.parent_result is not None
        _agree(local.result, remote.result)
        _agree(local.parent_result, remote.parent_result)
        assert abs(remote.relative_distance - local.relative_distance) <= 1e-9
        assert remote.relative_distance > 0
        timing = pool.timings[-1]
        print(f"\nswarm evaluation {remote.seconds:.1f} s ({timing}); local {local.seconds:.1f} s")

        # a parent peer dies between tasks: the next task restarts the parent's peers; a
        # candidate peer dies mid-evaluation: that attempt fails, the next one is right
        (served,) = pool._parents.values()
        groups += [p.pid for p in served.peers]
        procs.stop_group(served.peers[0].pid)
        pool._parent_results.clear()  # force the parent to be scored again, through new peers
        killed: list[int] = []
        watcher = threading.Thread(target=_kill_first_candidate_peer, args=(pool, killed))
        watcher.start()
        pool.submit(EvalTask("c1:again", recipe, SampleSpec("dev", 2, 11, rows)))
        (again,) = _wait(pool, 600)
        watcher.join()
        assert killed, "no candidate peer was killed"
        assert again.error is None, again.error
        assert pool.timings[-1].attempts == 2, pool.timings[-1]
        assert again.result is not None and again.parent_result is not None
        _agree(remote.result, again.result)
        _agree(local.parent_result, again.parent_result)
        assert again.relative_distance == remote.relative_distance
        (restarted,) = pool._parents.values()
        assert restarted is not served
        groups += [p.pid for p in restarted.peers] + killed
        print(f"after two peer deaths: {again.seconds:.1f} s ({pool.timings[-1]})")
    finally:
        pool.close()
    assert not [g for g in groups if procs.group_alive(g)], "a peer group survived close()"
    left = [pid for pid, _ in procs.p2pd_processes() if pid not in before]
    assert not left, f"p2pd left running: {left}"


def test_coordinator_up_with_the_petals_pool_starts_and_stops_its_swarm(
    world: Any, petals_py: Path, tmp_path: Path
) -> None:
    """``mergenet coordinator up --pool petals``: a bootstrap peer of its own on loopback,
    and no Petals process (p2pd daemon) left once the coordinator is stopped (SIGTERM)."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {
        "MERGENET_DATA_DIR": str(tmp_path / "data"),
        "MERGENET_COORDINATOR_BASE_DIR": str(world.base_dir),
        "MERGENET_COORDINATOR_DEV_ROWS": str(world.dharma_path("dev")),
        "MERGENET_COORDINATOR_HELDOUT_ROWS": str(world.dharma_path("heldout")),
    }
    env.pop("MERGENET_DATABASE_URL", None)
    argv = [sys.executable, "-m", "mergenet.cli", "coordinator", "up", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--pool", "petals", "--peers", "2", "--capacity", "1"]
    log = tmp_path / "coordinator.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline, up = time.monotonic() + 300, False
        while time.monotonic() < deadline and proc.poll() is None and not up:
            with contextlib.suppress(httpx.HTTPError):
                up = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            time.sleep(0.5)
        assert up, log.read_text()[-3000:]
        dht_log = tmp_path / "data" / "petals" / "logs" / "dht.log"
        assert "visible multiaddresses" in dht_log.read_text()
        groups = {os.getpgid(pid) for pid in _ours(tmp_path)}  # the bootstrap peer's group
        assert groups and [pid for pid, pgid in procs.p2pd_processes() if pgid in groups]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=240)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (_ours(tmp_path) or any(map(procs.group_alive, groups))):
        time.sleep(0.5)
    assert not _ours(tmp_path), "a Petals process outlived the coordinator"
    assert not [g for g in groups if procs.group_alive(g)], "a peer group (p2pd) survived"


def _ours(folder: Path) -> list[int]:
    """PIDs whose command line names ``folder`` (the pool's peers and scorers do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found
