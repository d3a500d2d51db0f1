"""Evaluations per minute through a Petals swarm against the in-process pool, same task stream.

A store folder holds the world's base (as the parent version) and the contributors' deltas;
the stream is one single-contribution recipe per contributor (task arithmetic at 0.8), all
on one inline sample of the dev rows (``--n`` rows per task, one seed), as the loop sends
contribution scorings. The process pool (``--workers`` processes) and
``PetalsEvaluationPool`` (a bootstrap peer and ``--servers`` server peers per model on
loopback, ``--capacity`` evaluations in flight) each first run one warm-up task not timed
(models loaded; for the swarm the parent's peers started and the parent scored), then the
stream is timed from first submission to last result. For the swarm, where the time goes
per evaluation: merging the candidate's slices, starting its server peers until they
announce their blocks on the DHT, starting the scorer (joining the DHT, routing over the
blocks), forwards (measured inside the scorer) and the rest of scoring. Usage::

    python benchmarks/petals_pool.py --tasks 4 --n 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

PARENT = "0" * 64


def store(world: Any, root: Path) -> list[str]:
    """Symlinks to the base (version ``PARENT``) and every contributor's delta; their shas."""
    from mergenet.protocol.hashes import sha256_file

    (root / "versions").mkdir(parents=True)
    (root / "versions" / PARENT).symlink_to(world.base_dir)
    shas = []
    for name in world.contributor_names:
        sha = sha256_file(world.delta_path(name))
        (root / "deltas" / sha[:2]).mkdir(parents=True, exist_ok=True)
        (root / "deltas" / sha[:2] / f"{sha}.safetensors").symlink_to(world.delta_path(name))
        shas.append(sha)
    return shas


def run_stream(pool: Any, warm: Any, tasks: list[Any]) -> tuple[float, list[Any]]:
    """Warm up (not timed), then (seconds for the stream, its outcomes)."""
    pool.submit(warm)
    first = drain(pool)
    assert all(o.error is None for o in first), [o.error for o in first]
    started = time.perf_counter()
    for t in tasks:
        pool.submit(t)
    outcomes = drain(pool)
    return time.perf_counter() - started, outcomes


def drain(pool: Any) -> list[Any]:
    out: list[Any] = []
    while pool.in_flight():
        out += pool.poll(1.0)
    return out


def cpu() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next((x.split(":", 1)[1].strip() for x in lines if x.startswith("Model name")), "?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=4)
    ap.add_argument("--n", type=int, default=4, help="rows per task in each sample")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--capacity", type=int, default=1)
    args = ap.parse_args()

    from mergenet.config import Settings
    from mergenet.ecosystem.spec import WorldSpec
    from mergenet.ecosystem.world import build_world
    from mergenet.petals.pool import PetalsEvaluationPool
    from mergenet.protocol.evaluation import EvalTask, SampleSpec, WorkerEnv
    from mergenet.protocol.jsonl import read_jsonl
    from mergenet.workers.local_pool import ProcessEvaluationPool

    world = build_world(WorldSpec(), Settings().world_root)
    tmp = Path(tempfile.mkdtemp(prefix="petals-pool-bench-"))
    shas = store(world, tmp / "store")
    env = WorkerEnv(store_root=str(tmp / "store"))
    sample = SampleSpec("dev", args.n, 5, tuple(read_jsonl(world.dharma_path("dev"))))

    def task(i: int) -> EvalTask:
        c = [{"sha256": shas[i % len(shas)], "weight": 0.8}]
        recipe = {"parent": PARENT, "strategy": "task_arithmetic", "contributions": c}
        return EvalTask(f"t{i}", recipe, sample)

    warm, stream = task(len(shas) - 1), [task(i) for i in range(args.tasks)]
    load = os.getloadavg()[0]
    local_pool = ProcessEvaluationPool(env, workers=args.workers)
    try:
        local_s, local_out = run_stream(local_pool, warm, stream)
    finally:
        local_pool.close()
    swarm_pool = PetalsEvaluationPool(
        env, tmp / "swarm", servers=args.servers, capacity=args.capacity
    )
    try:
        swarm_s, swarm_out = run_stream(swarm_pool, warm, stream)
        timings = swarm_pool.timings[1:]
    finally:
        swarm_pool.close()
        shutil.rmtree(tmp, ignore_errors=True)
    errors = [o.error for o in local_out + swarm_out if o.error]
    assert not errors, errors
    report(args, world, load, local_s, swarm_s, timings)


def report(args: Any, world: Any, load: float, local_s: float, swarm_s: float, t: Any) -> None:
    local_rate, swarm_rate = 60 * args.tasks / local_s, 60 * args.tasks / swarm_s
    print(f"\nCPU: {cpu()} ({os.cpu_count()} cores, 1-min load {load:.1f} at start)")
    print(f"world: {world.root.name}; {args.tasks} tasks, {args.n} rows per task per sample")
    print(f"{'pool':<34}{'seconds':>9}{'evals/min':>11}")
    print(f"{f'process ({args.workers} workers)':<34}{local_s:>9.1f}{local_rate:>11.2f}")
    label = f"petals ({args.servers} servers, capacity {args.capacity})"
    print(f"{label:<34}{swarm_s:>9.1f}{swarm_rate:>11.2f}")
    print(f"ratio swarm/process: {swarm_rate / local_rate:.3f}")
    print("\nswarm, per evaluation (median seconds):")
    for part in ("merge", "peers", "routing", "forwards", "scoring"):
        print(f"  {part:<10}{statistics.median(getattr(x, part) for x in t):>8.2f}")
    print(f"  attempts  {max(x.attempts for x in t)} (max)")


if __name__ == "__main__":
    main()
