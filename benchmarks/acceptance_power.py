"""False-accept rate and power of the sequential paired confirmation, on the model world.

Each trial confirms a candidate the way the loop does after selection: batch b draws fresh
private rows (``fresh_rows``, label ``confirmation``, a new seed per trial and batch; 64 per
task, the loop's sample of 16 per task for accuracy and all 64 for answer loss), scores parent
and candidate on them with the evaluator (``evaluate_items``, the worker's code path without a
coordinator), computes G exactly as the loop (``score_outcome``) and the per-item paired SE,
and asks :func:`mergenet.coordinator.sequential.decide` after each batch. One parent result
per (trial, batch) is shared by every candidate, as the worker's parent cache does.

Candidates (base = the world's base, as a fresh network's first version):

* ``no-change``: alice's delta at weight 0 (task arithmetic) — must never be accepted;
* ``ta-8``: task arithmetic of all eight at weight 0.12 — held-out 0.730 → 0.741 (README,
  merge quality): the known-good candidate;
* ``ties-8``: TIES of all eight at weight 0.12;
* ``alice-0.6``: alice at 0.6 (task arithmetic) — held-out +0.043 accuracy but ΔS ≈ −0.09, so
  its G is near 0: ambiguous by construction.

Measured (world db45132220f1, AMD EPYC, 2 cores at load ~15, 23 evaluations in 778 s, with
``--trials 3 --null-trials 3 --alpha 0.05 0.1``): no-change 0 of 3 accepted, 1 batch each
(results identical to the parent's); ``ta-8`` 1 of 3 accepted (after 3 batches), 3.67 batches
on average, Ĝ +0.019, +0.070, −0.019, per-batch SE ~0.043; α 0.05 and 0.1 decided alike.

Usage::

    python benchmarks/acceptance_power.py --trials 20 --null-trials 50 --alpha 0.05 --max-batches 4
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import time
from pathlib import Path
from typing import Any


def _recipes(world: Path, parent: str) -> dict[str, Any]:
    from mergenet.merge_strategies.recipe import Contribution, Recipe

    names = sorted(p.name for p in (world / "contributors").iterdir())
    paths = {n: world / "contributors" / n / "delta.safetensors" for n in names}
    sha = {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in paths.items()}
    everyone = [Contribution(sha256=sha[n], weight=0.12) for n in names]
    recipes = {
        "no-change": Recipe(
            parent=parent,
            strategy="task_arithmetic",
            contributions=[Contribution(sha256=sha["alice"], weight=0.0)],
        ),
        "ta-8": Recipe(parent=parent, strategy="task_arithmetic", contributions=everyone),
        "ties-8": Recipe(parent=parent, strategy="ties", contributions=everyone),
        "alice-0.6": Recipe(
            parent=parent,
            strategy="task_arithmetic",
            contributions=[Contribution(sha256=sha["alice"], weight=0.6)],
        ),
    }
    by_sha = {sha[n]: paths[n] for n in names}
    return {"recipes": recipes, "resolve": lambda s: by_sha[s]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="~/.cache/mergenet/worlds/world-db45132220f1")
    ap.add_argument("--trials", type=int, default=20, help="trials per non-null candidate")
    ap.add_argument("--null-trials", type=int, default=50, help="trials of no-change")
    ap.add_argument("--alpha", type=float, nargs="+", default=[0.05])
    ap.add_argument("--max-batches", type=int, default=4)
    ap.add_argument("--sample-n", type=int, default=0, help="accuracy rows per task (0: loop's)")
    ap.add_argument("--only", nargs="*", default=["ta-8", "no-change"])
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergenet.coordinator.acceptance import score_outcome
    from mergenet.coordinator.sequential import Batch, batch_se, decide
    from mergenet.coordinator.settings import LoopSettings
    from mergenet.ecosystem.fresh_rows import fresh_rows
    from mergenet.evaluator.items import Item
    from mergenet.evaluator.sampling import sample_for_scoring
    from mergenet.evaluator.score import relative_distance_between
    from mergenet.evaluator.scoring import evaluate_items
    from mergenet.merge_strategies.checkpoint_names import checkpoint_state, load_checkpoint_state
    from mergenet.merge_strategies.recipe import build
    from mergenet.protocol.evaluation import EvalOutcome

    torch.set_num_threads(max(1, torch.get_num_threads()))
    world = Path(args.world).expanduser()
    cfg = LoopSettings(**({"sample_n": args.sample_n} if args.sample_n else {}))
    model = AutoModelForCausalLM.from_pretrained(world / "base", dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(world / "base")
    parent_state = {k: v.clone() for k, v in checkpoint_state(model).items()}
    tasks = sorted({r["subject"] for r in _read(world / "dharma" / "dev.jsonl")})
    rr = _recipes(world, "0" * 64)
    names = [n for n in args.only if n in rr["recipes"]]
    states, dist, same = {}, {}, {}
    for n in names:
        states[n] = build(rr["recipes"][n], parent_state, rr["resolve"], check_parent=False)
        dist[n] = relative_distance_between(states[n], parent_state)
        same[n] = all(torch.equal(states[n][k], v) for k, v in parent_state.items())
    secret = secrets.token_bytes(32)
    cache: dict[tuple[str, int, int], dict[str, Any]] = {}
    evals = 0
    t_start = time.perf_counter()

    def result(name: str, trial: int, b: int) -> dict[str, Any]:
        nonlocal evals
        key = (name, trial, b)
        if name != "parent" and same[name] and trial > 0:  # bit-identical weights: the
            return result("parent", trial, b)  # parent's result (checked on trial 0)
        if key not in cache:
            seed = trial * 16 + b
            rows = fresh_rows(secret, tasks, label="confirmation", seed=seed, per_task=64)
            smp = sample_for_scoring(rows, cfg.sample_n, seed)
            items = [Item.from_dharma_row(r) for rs in smp.rows.values() for r in rs]
            loss = [Item.from_dharma_row(r) for rs in smp.loss_rows.values() for r in rs]
            load_checkpoint_state(model, parent_state if name == "parent" else states[name])
            cache[key] = evaluate_items(model, tok, items, loss).to_dict()
            evals += 1
        return cache[key]

    print(f"world {world.name}, candidates {names}, margin {cfg.margin}, K {args.max_batches}")
    print(f"weights identical to the parent: {same}; relative distance {dist}")
    rows_out = []
    for alpha in args.alpha:
        for n in names:
            trials = args.null_trials if n == "no-change" else args.trials
            accepted = used = 0
            gains: list[float] = []
            identical = 0
            for trial in range(trials):
                batches = []
                for b in range(args.max_batches):
                    p, c = result("parent", trial, b), result(n, trial, b)
                    identical += p == c
                    out = EvalOutcome("x", c, p, dist[n])
                    g = score_outcome(out, cfg.score, cfg.accuracy_weight).gain
                    se = batch_se(out.parent(), out.candidate(), cfg.score, cfg.accuracy_weight)
                    batches.append(Batch(g, se))
                    if trial == 0 and b == 0:
                        acc = out.candidate().macro("acc_choice"), out.parent().macro("acc_choice")
                        print(
                            f"  {n} batch 0: G {g:+.4f}, SE {se}, acc {acc[0]:.3f} vs {acc[1]:.3f}"
                        )
                    d = decide(batches, cfg.margin, alpha, args.max_batches)
                    if d.verdict != "continue":
                        break
                print(
                    f"    {n} trial {trial}: {d.verdict} after {d.batches} "
                    f"(Ĝ {d.gain:+.4f}, SE {d.se:.4f}, p {d.p_value:.3g})",
                    flush=True,
                )
                accepted += d.verdict == "accept"
                used += d.batches
                gains.append(d.gain)
            rows_out.append((alpha, n, trials, accepted, used / trials, gains, identical))
            print(
                f"  α {alpha} {n}: {accepted}/{trials} accepted, {used / trials:.2f} batches, "
                f"mean Ĝ {sum(gains) / len(gains):+.4f} ({evals} evals, "
                f"{time.perf_counter() - t_start:.0f} s)",
                flush=True,
            )
    print("\n| α | candidate | trials | accepted | mean batches | mean Ĝ | batches identical |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for alpha, n, trials, acc, mb, gains, ident in rows_out:
        print(
            f"| {alpha} | {n} | {trials} | {acc} ({acc / trials:.0%}) | {mb:.2f} | "
            f"{sum(gains) / len(gains):+.4f} | {ident} |"
        )
    print(f"\n{evals} evaluations in {time.perf_counter() - t_start:.0f} s")


def _read(path: Path) -> list[dict[str, Any]]:
    from mergenet.protocol.jsonl import read_jsonl

    return list(read_jsonl(path))


if __name__ == "__main__":
    main()
