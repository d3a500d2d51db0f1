"""Merge quality on the model world: each strategy at defaults vs base, best single, monolith.

Builds (or reuses, from the cache) the self-contained world — tokenizer, base Llama, one
fine-tuned contributor per task group and a monolith trained on all of their data with the
same total compute — then merges *all* contributors' deltas into the base with each
strategy at its default parameters (weights 1, mergekit's defaults) and scores every model
on the world's held-out Dharma set. Prints macro (unweighted over tasks) held-out metrics:
``acc_choice`` (choice log-likelihood), ``acc_letter`` (answer-letter logits), answer loss
and perplexity. Usage::

    python benchmarks/merge_quality.py                      # build/reuse the default world
    python benchmarks/merge_quality.py --world DIR          # an existing (even partial) world
    python benchmarks/merge_quality.py --strategies ties consensus task_arithmetic
    python benchmarks/merge_quality.py --no-singles --strategies tsv iso_c iso_cts \
        tall_consensus pcb lines task_arithmetic_layerwise   # the paper merges (issue 17)
    python benchmarks/merge_quality.py --no-reference --strategies task_arithmetic \
        --contributors alice --weight 0.6                  # one contributor, scaled down
    python benchmarks/merge_quality.py --no-reference --strategies ties --weight 0.3 \
        --param density=0.2 --param normalize=false        # parameters away from defaults
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

METRICS = ("acc_choice", "acc_letter", "answer_loss", "ppl")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strategies", nargs="*", help="default: every strategy taking k deltas")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--world", type=Path, help="use this world folder as it is (no build)")
    ap.add_argument("--no-reference", action="store_true", help="skip base/singles/monolith")
    ap.add_argument(
        "--no-singles", action="store_true", help="reference rows base and monolith only"
    )
    ap.add_argument("--contributors", nargs="*", help="merge only these (default: all)")
    ap.add_argument("--weight", type=float, default=1.0, help="every delta's weight")
    ap.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a strategy param"
    )
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergenet.config import get_settings
    from mergenet.deltas.models import ModelSource
    from mergenet.ecosystem.spec import WorldSpec
    from mergenet.ecosystem.world import World, build_world
    from mergenet.evaluator.scoring import evaluate_items
    from mergenet.merge_strategies import engine, registry

    settings = get_settings()
    spec = WorldSpec(seed=settings.world_seed)
    world = World(args.world, spec) if args.world else build_world(spec, settings.world_root)
    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    items = world.items(args.split)
    names = [n for n in world.contributor_names if world.delta_path(n).exists()]
    unknown = sorted(set(args.contributors or []) - set(names))
    if unknown:
        ap.error(f"no such contributor in the world: {', '.join(unknown)} (have {names})")
    merged_names = args.contributors or names
    deltas = [world.delta_path(n) for n in merged_names]
    k = len(deltas)
    params = dict(_param(p, ap) for p in args.param)

    def score(path: Path) -> dict[str, float]:
        m = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
        r = evaluate_items(m, tokenizer, items)
        return {metric: r.macro(metric) for metric in METRICS}

    rows: dict[str, dict[str, float]] = {}
    if not args.no_reference:
        rows["base"] = score(world.base_dir)
        if not args.no_singles:
            singles = {n: score(world.contributor_dir(n)) for n in names}
            best = max(singles, key=lambda n: singles[n]["acc_choice"])
            rows[f"best single ({best})"] = singles[best]
            rows["mean single"] = {
                m: sum(s[m] for s in singles.values()) / len(singles) for m in METRICS
            }
            print({n: round(s["acc_choice"], 4) for n, s in singles.items()}, flush=True)
        if (world.monolith_dir / "config.json").exists():
            rows["monolith"] = score(world.monolith_dir)

    model = AutoModelForCausalLM.from_pretrained(world.base_dir, dtype="float32").eval()
    base = ModelSource(world.base_dir).state_dict()  # as stored (a tied lm_head is not)
    chosen = args.strategies or [
        s.name
        for s in registry.all_strategies()
        if s.min_deltas <= k and (s.max_deltas is None or s.max_deltas >= k)
    ]
    for name in chosen:
        t0 = time.perf_counter()
        merged = engine.merge_state_dict(name, base, deltas, [args.weight] * k, params, seed=0)
        seconds = time.perf_counter() - t0
        model.load_state_dict(merged, strict=False)
        result = evaluate_items(model, tokenizer, items)
        rows[name] = {m: result.macro(m) for m in METRICS} | {"merge s": seconds}
        print(name, {m: round(v, 4) for m, v in rows[name].items()}, flush=True)

    cols = [*METRICS, "merge s"]
    how = f"weight {args.weight}, params {params or 'defaults'}"
    print(f"\n{args.split} macro metrics; {', '.join(merged_names)} merged at {how}")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for label, r in rows.items():
        cells = [f"{r[c]:.4f}" if c in r else "" for c in cols]
        print(f"| {label} | " + " | ".join(cells) + " |")


def _param(text: str, ap: argparse.ArgumentParser) -> tuple[str, object]:
    """``name=value`` with the value read as JSON when it parses (numbers, true/false)."""
    import json

    name, sep, raw = text.partition("=")
    if not sep or not name:
        ap.error(f"--param takes NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


if __name__ == "__main__":
    main()
