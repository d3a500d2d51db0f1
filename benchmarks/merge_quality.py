"""Merge quality on the model world: each strategy at defaults vs base, best single, monolith.

Builds (or reuses, from the cache) the self-contained world — tokenizer, base Llama, one
fine-tuned contributor per task group and a monolith trained on all of their data with the
same total compute — then merges *all* contributors' deltas into the base with each
strategy at its default parameters (weights 1) and scores every model on the world's
held-out Dharma set. Prints a table of macro (unweighted over tasks) held-out metrics:
``acc_choice`` (choice log-likelihood), ``acc_letter`` (answer-letter logits), answer loss
and perplexity. Usage::

    python benchmarks/merge_quality.py                    # the default world
    python benchmarks/merge_quality.py --strategies ties consensus task_arithmetic
"""

from __future__ import annotations

import argparse
import time

METRICS = ("acc_choice", "acc_letter", "answer_loss", "ppl")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strategies", nargs="*", help="default: every strategy taking k deltas")
    ap.add_argument("--split", default="heldout")
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergenet.config import get_settings
    from mergenet.ecosystem.report import evaluate_world
    from mergenet.ecosystem.spec import WorldSpec
    from mergenet.ecosystem.world import build_world
    from mergenet.evaluator.scoring import evaluate_items
    from mergenet.merge_strategies import engine, registry

    settings = get_settings()
    world = build_world(WorldSpec(seed=settings.world_seed), settings.world_root)
    reference = evaluate_world(world, split=args.split)
    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    items = world.items(args.split)
    names = world.contributor_names
    deltas = [world.delta_path(n) for n in names]
    k = len(deltas)
    model = AutoModelForCausalLM.from_pretrained(world.base_dir, dtype="float32").eval()
    base = {n: t.detach().clone() for n, t in model.state_dict().items()}

    rows: dict[str, dict[str, float]] = {}
    rows["base"] = {m: reference["base"].macro(m) for m in METRICS}
    best = max(names, key=lambda n: reference[n].macro("acc_choice"))
    rows[f"best single ({best})"] = {m: reference[best].macro(m) for m in METRICS}
    rows["monolith"] = {m: reference["monolith"].macro(m) for m in METRICS}

    chosen = args.strategies or [
        s.name
        for s in registry.all_strategies()
        if s.min_deltas <= k and (s.max_deltas is None or s.max_deltas >= k)
    ]
    for name in chosen:
        t0 = time.perf_counter()
        merged = engine.merge_state_dict(name, base, deltas, [1.0] * k, seed=0)
        seconds = time.perf_counter() - t0
        model.load_state_dict(merged)
        result = evaluate_items(model, tokenizer, items)
        rows[name] = {m: result.macro(m) for m in METRICS} | {"merge s": seconds}
        print(name, rows[name], flush=True)
    model.load_state_dict(base)

    cols = [*METRICS, "merge s"]
    print(f"\nheld-out macro metrics, {k} contributors merged at default parameters")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, r in rows.items():
        cells = [f"{r[c]:.4f}" if c in r else "" for c in cols]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
