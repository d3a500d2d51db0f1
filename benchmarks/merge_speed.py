"""Merge speed: mergekit (run_merge and in-memory merge_state_dicts) vs mergenet's fast path.

Builds a random Llama of ≥100M parameters locally (nothing downloaded) and four fine-tuned
variants (base + small noise), then times the same 4-way merges with:

* ``mergekit run_merge``   — load + merge + save, from a YAML, as the mergekit CLI runs it;
* ``mergekit in-memory``  — ``mergekit.merge_methods.merge_state_dicts`` on loaded models;
* ``mergenet in-memory``  — ``mergenet.merge_strategies.engine.merge_state_dict`` on the base
  and the four deltas (the evolution loop's hot path);

and reports mergenet's bytes processed per second — (k + 2) model sizes: base and k deltas
read, output written — next to ``torch.add`` over the same bytes (three tensors per call: the
memory-bandwidth floor). Usage::

    python benchmarks/merge_speed.py            # ~100M params, a few minutes on 2 cores
    python benchmarks/merge_speed.py --layers 2 --skip-run-merge   # quick look
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

K = 4
WEIGHTS = [0.3, 0.3, 0.2, 0.2]
MERGES = [
    ("task_arithmetic", {"lambda": 1.0}),
    ("linear", {}),
    ("ties", {"density": 0.5}),
    ("dare_ties", {"density": 0.5}),
]
RUN_MERGE_METHODS = {"task_arithmetic", "ties", "dare_ties"}


def build_models(layers: int, hidden: int, inter: int, vocab: int, seed: int = 0, k: int = K):
    """(config, base state dict, [k fine-tuned state dicts], [k deltas]) — all float32."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        tie_word_embeddings=False,
        architectures=["LlamaForCausalLM"],
    )
    head_dim = hidden // cfg.num_attention_heads
    kv = cfg.num_key_value_heads * head_dim
    shapes = {"model.embed_tokens.weight": (vocab, hidden)}
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (hidden, hidden),
            p + "self_attn.k_proj.weight": (kv, hidden),
            p + "self_attn.v_proj.weight": (kv, hidden),
            p + "self_attn.o_proj.weight": (hidden, hidden),
            p + "mlp.gate_proj.weight": (inter, hidden),
            p + "mlp.up_proj.weight": (inter, hidden),
            p + "mlp.down_proj.weight": (hidden, inter),
            p + "input_layernorm.weight": (hidden,),
            p + "post_attention_layernorm.weight": (hidden,),
        }
    shapes |= {"model.norm.weight": (hidden,), "lm_head.weight": (vocab, hidden)}
    g = torch.Generator().manual_seed(seed)
    base = {
        n: (torch.ones(s) if len(s) == 1 else torch.randn(s, generator=g) * 0.02)
        for n, s in shapes.items()
    }
    fts, deltas = [], []
    for _ in range(k):
        d = {n: torch.randn(t.shape, generator=g) * 0.002 for n, t in base.items()}
        ft = {n: base[n] + d[n] for n in base}
        fts.append(ft)
        deltas.append({n: ft[n] - base[n] for n in base})
    return cfg, base, fts, deltas


CLOCK = {"clock": time.perf_counter}


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Best of ``repeat`` runs on the chosen clock (wall, or this process's CPU time)."""
    clock = CLOCK["clock"]
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t0 = clock()
        out = fn()
        best = min(best, clock() - t0)
    return best, out


class AddFloor:
    """``torch.add`` over every tensor of the model (3 tensors' bytes per call), into
    preallocated outputs or allocating them: the memory-bandwidth floor. The faster of 1 and
    all threads. ``sample()`` is also called between mergenet's runs, so that each row's
    "% of torch.add" compares timings taken under the same load (the machine is shared)."""

    def __init__(self, base: dict[str, torch.Tensor]):
        self.base = base
        self.others = {n: torch.randn_like(t) for n, t in base.items()}
        self.outs = {n: torch.empty_like(t).zero_() for n, t in base.items()}
        self.nbytes = 3 * sum(t.numel() * 4 for t in base.values())

    def _into(self) -> None:
        for n, t in self.base.items():
            torch.add(t, self.others[n], out=self.outs[n])

    def _alloc(self) -> list[torch.Tensor]:
        return [torch.add(t, self.others[n]) for n, t in self.base.items()]

    def sample(self, alloc: bool = False, repeat: int = 1) -> float:
        """Best bytes/s over ``repeat`` runs at each of 1 and all threads."""
        threads = torch.get_num_threads()
        best = float("inf")
        for n in sorted({1, threads}):
            torch.set_num_threads(n)
            best = min(best, timed(self._alloc if alloc else self._into, repeat=repeat)[0])
        torch.set_num_threads(threads)
        return self.nbytes / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--intermediate", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--skip-run-merge", action="store_true")
    ap.add_argument("--skip-mergekit", action="store_true", help="time mergenet only")
    ap.add_argument("--only", nargs="*", help="subset of merges")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="best of N runs, for mergekit in-memory and mergenet alike (run_merge: once)",
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="torch threads for everyone (default: torch's)"
    )
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu = process CPU seconds: robust on a shared machine (use with --threads 1)",
    )
    args = ap.parse_args()
    if args.clock == "cpu":
        CLOCK["clock"] = time.process_time
    if args.threads:
        torch.set_num_threads(args.threads)

    from mergekit.merge_methods import merge_state_dicts

    from mergenet.deltas.io import save_tensors
    from mergenet.merge_strategies import engine, registry
    from mergenet.merge_strategies.export import run_mergekit

    cfg, base, fts, deltas = build_models(args.layers, args.hidden, args.intermediate, args.vocab)
    nparams = sum(t.numel() for t in base.values())
    model_bytes = nparams * 4
    print(
        f"model: {nparams / 1e6:.1f}M params ({model_bytes / 1e9:.2f} GB float32), k={K} deltas,"
        f" torch threads={torch.get_num_threads()}, clock={args.clock}, load={os.getloadavg()}"
    )
    add_floor = AddFloor(base)
    floor, floor_alloc = add_floor.sample(repeat=3), add_floor.sample(alloc=True, repeat=3)
    print(
        f"torch.add floor: {floor / 1e9:.2f} GB/s into existing outputs, "
        f"{floor_alloc / 1e9:.2f} GB/s allocating them"
    )

    tmp = Path(tempfile.mkdtemp(prefix="mergenet-bench-"))
    paths = []
    if not args.skip_run_merge and not args.skip_mergekit:
        for j, sd in enumerate([base, *fts]):
            d = tmp / f"m{j}"
            d.mkdir()
            cfg.save_pretrained(d)
            save_tensors(sd, d / "model.safetensors", {"format": "pt"})
            paths.append(str(d))

    rows = []
    merges = [m for m in MERGES if not args.only or m[0] in args.only]
    for name, params in merges:
        strategy = registry.get(name)
        p = strategy.space.contain(params)
        mk_params = strategy.mergekit_parameters(p, K, WEIGHTS)
        row = {"merge": name}
        if not args.skip_mergekit:
            if strategy.base_input:
                models = {"base": base, **{f"m{j}": ft for j, ft in enumerate(fts)}}
            else:
                models = {f"m{j}": ft for j, ft in enumerate(fts)}
            with torch.no_grad():
                t_mem, mk_out = timed(
                    lambda models=models, mk_params=mk_params, strategy=strategy: merge_state_dicts(
                        models,
                        strategy.mergekit_method,
                        parameters=mk_params,
                        base="base" if strategy.base_input else None,
                    ),
                    repeat=args.repeat,
                )
            row["mergekit in-memory s"] = t_mem
            if not args.skip_run_merge and name in RUN_MERGE_METHODS:
                config = {
                    "merge_method": strategy.mergekit_method,
                    "base_model": paths[0],
                    "models": [
                        {"model": paths[j + 1], "parameters": {"weight": WEIGHTS[j]}}
                        for j in range(K)
                    ],
                    "parameters": {k: v for k, v in mk_params.items() if k != "weight"},
                    "dtype": "float32",
                }
                out_dir = tmp / f"out-{name}"
                t_run, _ = timed(
                    lambda config=config, out_dir=out_dir: run_mergekit(config, out_dir)
                )
                shutil.rmtree(out_dir, ignore_errors=True)
                row["mergekit run_merge s"] = t_run
        # mergenet's runs interleaved with torch.add floor runs (same load for both).
        t_ours, row_floor, ours = float("inf"), 0.0, None
        for _ in range(args.repeat):
            row_floor = max(row_floor, add_floor.sample())
            del ours
            t, ours = timed(
                lambda name=name, p=p: engine.merge_state_dict(
                    name, base, deltas, WEIGHTS, p, seed=0
                )
            )
            t_ours = min(t_ours, t)
        row["mergenet s"] = t_ours
        if not args.skip_mergekit and not strategy.stochastic:
            row["max |diff|"] = max(float((ours[n] - mk_out[n]).abs().max()) for n in ours)
            row["coords > 1e-6"] = sum(
                int(((ours[n] - mk_out[n]).abs() > 1e-6).sum()) for n in ours
            )
        bps = (K + 2) * model_bytes / t_ours
        row["mergenet GB/s"] = bps / 1e9
        row["torch.add GB/s (interleaved)"] = row_floor / 1e9
        row["% of torch.add"] = 100 * bps / row_floor
        row["% of allocating torch.add"] = 100 * bps / floor_alloc
        if "mergekit in-memory s" in row:
            row["speedup vs in-memory"] = row["mergekit in-memory s"] / t_ours
        rows.append(row)
        del ours
        gc.collect()
        print(row, flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

    cols = [
        "merge",
        "mergekit run_merge s",
        "mergekit in-memory s",
        "mergenet s",
        "speedup vs in-memory",
        "mergenet GB/s",
        "torch.add GB/s (interleaved)",
        "% of torch.add",
        "% of allocating torch.add",
        "max |diff|",
        "coords > 1e-6",
    ]
    print()
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        cells = []
        for c in cols:
            v = row.get(c, "")
            if isinstance(v, float):
                v = f"{v:.1e}" if c == "max |diff|" else f"{v:.2f}"
            cells.append(str(v))
        print("| " + " | ".join(cells) + " |")
    print(
        f"\n{nparams / 1e6:.0f}M params, k={K}, float32; torch.add {floor / 1e9:.2f} GB/s into "
        f"existing outputs, {floor_alloc / 1e9:.2f} GB/s allocating them (at the start; "
        "each row's % of torch.add uses the floor sampled between its runs); "
        f"GB/s counts (k+2) model sizes per merge; {args.clock} clock, "
        f"{torch.get_num_threads()} thread(s), best of {args.repeat}, "
        f"load average {os.getloadavg()[0]:.1f}."
    )


if __name__ == "__main__":
    main()
