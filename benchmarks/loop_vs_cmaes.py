"""The evolutionary loop vs a CMA-ES search, on the same world, pool and evaluation budget.

Both searches start from the world's base model with the 8 contributors' deltas, score
candidates against the base on the same dev selection sample, and may spend ``--budget``
evaluations. The loop is the coordinator's (H(s) over strategies, single/multi/crossover/
mutation candidates, acceptance with confirmation on a fresh sample; confirmations count
against its budget); CMA-ES searches one fixed strategy's weights and density (the
mergekit-evolve design). After each evaluation, each search has a "best so far" model (the
loop: its current accepted version; CMA-ES: the best candidate by dev gain). The table gives
that model's **held-out macro acc_choice** (never seen by either search) against the number
of evaluations. Usage::

    python benchmarks/loop_vs_cmaes.py --budget 60 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any


def heldout_acc(world: Any, state: dict | None = None, folder: Path | None = None) -> float:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergenet.evaluator.scoring import evaluate_items

    model = AutoModelForCausalLM.from_pretrained(folder or world.base_dir, dtype="float32").eval()
    if state is not None:
        model.load_state_dict(state)
    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    return evaluate_items(model, tokenizer, world.items("heldout")).macro("acc_choice")


def _recipe_summary(recipe: dict | None, names: dict[str, str]) -> str:
    if not recipe:
        return "the base"
    parts = ", ".join(
        f"{names.get(c['sha256'], c['sha256'][:8])} {c['weight']:.2f}"
        for c in recipe.get("contributions", [])
    )
    return f"{recipe['strategy']} [{parts}]"


def run_loop(world: Any, data: Path, budget: int, workers: int, seed: int) -> dict[int, float]:
    """Held-out score of the loop's current version after each evaluation."""
    from eth_account import Account
    from sqlalchemy import select

    from mergenet.config import Settings
    from mergenet.coordinator import models as m
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings
    from mergenet.coordinator.state import current_version, evolution_evaluations
    from mergenet.coordinator.submissions import Upload
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import sign_submission

    settings = Settings(data_dir=data)
    cs = CoordinatorSettings(
        base_dir=world.base_dir,
        dev_rows=world.dharma_path("dev"),
        heldout_rows=world.dharma_path("heldout"),
        workers=workers,
        max_evaluations=budget,
        seed=seed,
    )
    coord = Coordinator(settings, cs).open()
    try:
        with coord.factory() as s:
            parent = current_version(s).hash
        names: dict[str, str] = {}
        for i, name in enumerate(world.contributor_names):
            acct = Account.from_key((i + 1).to_bytes(32, "big"))
            path = world.delta_path(name)
            names[sha256_file(path)] = name
            sig = sign_submission(acct, sha256_file(path), parent, 1, coord.domain)
            with path.open("rb") as fh:
                coord.submissions.submit(Upload(acct.address, parent, "1", sig), fh)
        scores: dict[int, float] = {}
        cache: dict[str, float] = {}
        last = 0
        while True:
            coord.loop.step(0.5)
            with coord.factory() as s:
                n = evolution_evaluations(s)
                v = current_version(s)
                folder = coord.store.root / v.weights_path
                vh = v.hash
                what = _recipe_summary(v.recipe, names)
                scored = s.scalar(select(m.Contribution).where(m.Contribution.status == m.RECEIVED))
            if vh not in cache:
                cache[vh] = heldout_acc(world, folder=folder)
                print(
                    f"  loop: version {vh[:10]} held-out {cache[vh]:.4f} at eval {n}: {what}",
                    flush=True,
                )
            for k in range(last + 1, n + 1):
                scores[k] = cache[vh]
            last = max(last, n)
            if n >= budget and coord.pool.in_flight() == 0 and scored is None:
                break
        return scores
    finally:
        coord.close()


def run_cmaes(
    world: Any, data: Path, budget: int, workers: int, seed: int, strategy: str
) -> dict[int, float]:
    from cmaes_search import cmaes_search  # beside this file
    from mergenet.coordinator.artifacts import ArtifactStore
    from mergenet.coordinator.runtime import ensure_base_version
    from mergenet.db import make_engine, make_session_factory
    from mergenet.merge_strategies.recipe import build
    from mergenet.migrate import upgrade
    from mergenet.protocol.evaluation import SampleSpec, WorkerEnv
    from mergenet.protocol.hashes import sha256_file
    from mergenet.workers.local_pool import ProcessEvaluationPool

    data.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{data / 'cma.db'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    store = ArtifactStore(data / "artifacts")
    version = ensure_base_version(factory, store, world.base_dir)
    shas = []
    for name in world.contributor_names:
        path = world.delta_path(name)
        sha = sha256_file(path)
        tmp = store.incoming(".safetensors")
        tmp.write_bytes(path.read_bytes())
        store.put_delta(tmp, sha)
        shas.append(sha)
    pool = ProcessEvaluationPool(
        WorkerEnv(str(store.root), {"dev": str(world.dharma_path("dev"))}), workers=workers
    )
    from safetensors.torch import load_file

    base = load_file(store.version_dir(version.hash) / "model.safetensors")
    best = (-1e9, None)
    scores: dict[int, float] = {}
    current = heldout_acc(world)

    def on_eval(p: Any) -> None:
        nonlocal best, current
        if p.gain > best[0]:
            best = (p.gain, p.recipe)
            current = heldout_acc(
                world, state=build(p.recipe, base, store.delta_path, check_parent=False)
            )
            print(
                f"  cma-es: gain {p.gain:.4f} held-out {current:.4f} at eval {p.evaluation}",
                flush=True,
            )
        scores[p.evaluation] = current

    try:
        cmaes_search(
            pool,
            parent=version.hash,
            contributions=shas,
            sample=SampleSpec("dev", 16, version.selection_seed),
            budget=budget,
            strategy=strategy,
            seed=seed,
            on_eval=on_eval,
        )
    finally:
        pool.close()
        engine.dispose()
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategy", default="ties", help="CMA-ES's fixed strategy")
    ap.add_argument("--every", type=int, default=10, help="table row every N evaluations")
    ap.add_argument("--world", type=Path, help="an existing world folder (default: build/reuse)")
    args = ap.parse_args()

    from mergenet.config import get_settings
    from mergenet.ecosystem.spec import ContributorSpec, WorldSpec
    from mergenet.ecosystem.world import World, build_world

    settings = get_settings()
    if args.world is not None:  # e.g. a world still being tuned: its folders as they are
        names = sorted(p.name for p in (args.world / "contributors").iterdir())
        spec = WorldSpec(contributors=tuple(ContributorSpec(n, ()) for n in names))
        world = World(args.world, spec)
    else:
        world = build_world(WorldSpec(seed=settings.world_seed), settings.world_root)
    base_acc = heldout_acc(world)
    singles = {
        n: heldout_acc(world, folder=world.contributor_dir(n)) for n in world.contributor_names
    }
    best_single = max(singles.values())
    mono = (
        f", monolith {heldout_acc(world, folder=world.monolith_dir):.4f}"
        if (world.monolith_dir / "config.json").exists()
        else ""
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        loop = run_loop(world, Path(tmp) / "loop", args.budget, args.workers, args.seed)
        t_loop = time.perf_counter() - t0
        t0 = time.perf_counter()
        cma = run_cmaes(
            world, Path(tmp) / "cma", args.budget, args.workers, args.seed, args.strategy
        )
        t_cma = time.perf_counter() - t0
    print(
        f"\nheld-out macro acc_choice of the best-so-far model vs evaluations "
        f"(budget {args.budget}; base {base_acc:.4f}, "
        f"best single contributor {best_single:.4f}{mono})"
    )
    print(
        f"| evaluations | loop (H(s), {t_loop:.0f} s) | CMA-ES ({args.strategy}, {t_cma:.0f} s) |"
    )
    print("|---:|---:|---:|")
    marks = sorted({*range(args.every, args.budget + 1, args.every), args.budget})
    for k in marks:
        lv = loop.get(k, loop[max(loop)] if loop else float("nan"))
        cv = cma.get(k, float("nan"))
        print(f"| {k} | {lv:.4f} | {cv:.4f} |")


if __name__ == "__main__":
    main()
