"""One candidate cycle (merge + score) against the tools a user would chain instead.

On a random-initialised Llama of ≥100M parameters with the world's tokenizer (nothing can be
downloaded; ``merge_speed.build_models``: hidden 1024, 8 layers, ~104M parameters) and four
fine-tuned variants (base + small noise), one candidate is merged and scored on the same
multiple-choice requests (held-out questions of the world's tasks, four choices each) by

* ``mergekit + lm-eval``: mergekit's ``run_merge`` to disk from the YAML a user would write,
  the merged folder reloaded with transformers (``HFLM(pretrained=folder)``), then lm-eval
  0.4.13's ``HFLM.loglikelihood`` at each batch size asked for (the best one counts);
* ``mergenet``: the evaluation worker's path: ``merge_strategies.recipe.build`` in memory from
  the parent's state dict and the four delta files (memory-mapped safetensors, as the artifact
  store holds them), ``load_state_dict`` into the worker's cached model, then
  ``evaluator.scoring.score_sequences``.

Both in one process with the same torch threads; the log-probabilities of the two merged
models must agree to ``TOLERANCE`` (the same merge was computed) or the run fails. Setup
(writing the five model folders and the deltas) is not timed. Usage::

    python benchmarks/cycle_speed.py                      # ~10 min on 2 cores
    python benchmarks/cycle_speed.py --questions 4 --batch-sizes 32   # quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from merge_speed import WEIGHTS, K, build_models  # type: ignore[import-not-found]
from scoring_speed import cpu_name, requests_for  # type: ignore[import-not-found]

LARGE = {"layers": 8, "hidden": 1024, "inter": 2816}
TOLERANCE = 1e-2
"""Largest accepted difference of a request's log-probability between the two merged models.
The two merges agree to float rounding only (mergenet's kernels sum in another order than
mergekit's), which the random 104M model turned into 1.97e-3 on a request's log-probability in
the first run here; a wrong merge moves them by whole units."""


def write_folders(
    world: Any, tmp: Path, method: str, params: dict[str, Any]
) -> tuple[list[Path], list[Path], dict[str, Any], int]:
    """Base + K fine-tuned HF folders, K delta files, and mergekit's YAML (as a dict)."""
    from transformers import AutoTokenizer

    from mergenet.deltas.io import save_tensors
    from mergenet.merge_strategies import registry

    tok = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    cfg, base, fts, deltas = build_models(
        LARGE["layers"], LARGE["hidden"], LARGE["inter"], len(tok)
    )
    cfg.max_position_embeddings = 1024
    folders = []
    for j, sd in enumerate([base, *fts]):
        d = tmp / f"m{j}"
        d.mkdir()
        cfg.save_pretrained(d)
        tok.save_pretrained(d)
        save_tensors(sd, d / "model.safetensors", {"format": "pt"})
        folders.append(d)
    delta_files = []
    for j, dl in enumerate(deltas):
        f = tmp / f"delta{j}.safetensors"
        save_tensors(dl, f, {"format": "pt"})
        delta_files.append(f)
    strategy = registry.get(method)
    mk = strategy.mergekit_parameters(strategy.space.contain(params), K, WEIGHTS)
    yaml_config = {
        "merge_method": strategy.mergekit_method,
        "base_model": str(folders[0]),
        "models": [
            {"model": str(folders[j + 1]), "parameters": {"weight": WEIGHTS[j]}} for j in range(K)
        ],
        "parameters": {k: v for k, v in mk.items() if k != "weight"},
        "dtype": "float32",
    }
    nparams = sum(t.numel() for t in base.values())
    return folders, delta_files, yaml_config, nparams


def mergekit_cycle(
    yaml_config: dict[str, Any], tmp: Path, jobs: list[Any], batch_sizes: list[str]
) -> tuple[dict[str, float], list[float], str]:
    """Seconds per step of mergekit run_merge → reload → lm-eval; and lm-eval's log-probs."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from mergenet.evaluator.encoding import completion_prompt, continuation
    from mergenet.merge_strategies.export import run_mergekit

    out = tmp / "mergekit-out"
    t0 = time.perf_counter()
    run_mergekit(yaml_config, out)
    steps = {"merge": time.perf_counter() - t0}
    shutil.copy(Path(yaml_config["base_model"]) / "tokenizer.json", out)
    shutil.copy(Path(yaml_config["base_model"]) / "tokenizer_config.json", out)
    requests = [
        Instance("loglikelihood", {}, (completion_prompt(it), continuation(it.choices[c])), i)
        for i, (it, c) in enumerate(jobs)
    ]
    best, lps, best_bs, reload = float("inf"), [], "", 0.0
    for bs in batch_sizes:
        t0 = time.perf_counter()
        lm = HFLM(pretrained=str(out), device="cpu", batch_size=bs)
        reload = time.perf_counter() - t0  # the same every time: the last one counts
        t0 = time.perf_counter()
        res = lm.loglikelihood(requests, disable_tqdm=True)
        secs = time.perf_counter() - t0
        print(f"  lm-eval bs {bs}: {secs:.1f} s", flush=True)
        if secs < best:
            best, lps, best_bs = secs, [lp for lp, _ in res], bs
        del lm
    steps |= {"reload": reload, "score": best}
    return steps, lps, best_bs


def mergenet_cycle(
    base_dir: Path, delta_files: list[Path], method: str, params: dict[str, Any], jobs: list[Any]
) -> tuple[dict[str, float], list[float]]:
    """Seconds per step of the worker's build → load_state_dict → score; and its log-probs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergenet.evaluator.encoding import encode_completions
    from mergenet.evaluator.scoring import score_sequences
    from mergenet.merge_strategies.recipe import Contribution, Recipe, build

    # the worker caches its parent model and state between tasks: not part of a cycle
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    tok: Any = AutoTokenizer.from_pretrained(base_dir)
    parent = {n: t.detach().clone() for n, t in model.state_dict().items()}
    recipe = Recipe(
        parent="00" * 32,
        strategy=method,
        params=params,
        contributions=[Contribution(sha256=f"{j:064x}", weight=w) for j, w in enumerate(WEIGHTS)],
    )
    files = {f"{j:064x}": f for j, f in enumerate(delta_files)}
    steps = {}
    t0 = time.perf_counter()
    merged = build(recipe, parent, files.__getitem__, check_parent=False)
    steps["merge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.load_state_dict(merged)
    steps["reload"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    seqs = encode_completions(tok, [it for it, _ in jobs], [c for _, c in jobs])
    scores = score_sequences(model, seqs)
    steps["score"] = time.perf_counter() - t0
    return steps, [s.answer_logprob for s in scores]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="ties", help="a strategy mergekit also runs")
    parser.add_argument("--questions", type=int, default=8, help="held-out questions per task")
    parser.add_argument("--batch-sizes", nargs="+", default=["8", "32", "64"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--world", type=Path, help="an existing world folder (default: build/reuse)"
    )
    args = parser.parse_args()

    from mergenet.config import get_settings
    from mergenet.ecosystem.spec import WorldSpec
    from mergenet.ecosystem.world import World, build_world

    torch.set_num_threads(args.threads)
    settings = get_settings()
    spec = WorldSpec(seed=settings.world_seed)
    world = World(args.world, spec) if args.world else build_world(spec, settings.world_root)
    jobs = requests_for(world, args.questions)
    params = {"density": 0.5}
    with tempfile.TemporaryDirectory(prefix="mergenet-cycle-") as name:
        tmp = Path(name)
        folders, delta_files, yaml_config, nparams = write_folders(world, tmp, args.method, params)
        print(
            f"machine: {cpu_name()}, {torch.get_num_threads()} torch threads, "
            f"load {os.getloadavg()[0]:.1f}; model {nparams / 1e6:.1f}M parameters, "
            f"{K} deltas, {args.method}; {len(jobs)} requests",
            flush=True,
        )
        ours, our_lp = mergenet_cycle(folders[0], delta_files, args.method, params, jobs)
        print("  mergenet: " + ", ".join(f"{k} {v:.2f} s" for k, v in ours.items()), flush=True)
        theirs, their_lp, best_bs = mergekit_cycle(yaml_config, tmp, jobs, args.batch_sizes)
    diff = max(abs(a - b) for a, b in zip(our_lp, their_lp, strict=True))
    print_table(ours, theirs, best_bs, diff)
    if diff > TOLERANCE:
        raise SystemExit(f"the two merged models' log-probabilities differ by {diff:.2e}")


def print_table(
    ours: dict[str, float], theirs: dict[str, float], best_bs: str, diff: float
) -> None:
    labels = {
        "merge": ("merge (run_merge to disk)", "merge (recipe.build in memory)"),
        "reload": ("reload (HFLM from the folder)", "load_state_dict into the cached model"),
        "score": (f"lm-eval loglikelihood (best: bs {best_bs})", "score_sequences"),
    }
    print("\n| step | mergekit + lm-eval (s) | mergenet (s) | ratio |")
    print("|---|---:|---:|---:|")
    for key, (t, o) in labels.items():
        print(
            f"| {key}: {t} / {o} | {theirs[key]:.2f} | {ours[key]:.2f} | "
            f"{theirs[key] / ours[key]:.1f}x |"
        )
    total_t, total_o = sum(theirs.values()), sum(ours.values())
    print(f"| **cycle** | {total_t:.2f} | {total_o:.2f} | **{total_t / total_o:.1f}x** |")
    print(f"\nlog-probabilities of the two merged models agree to {diff:.1e}")


if __name__ == "__main__":
    main()
