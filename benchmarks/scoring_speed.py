"""Scoring speed: mergenet's prefix-tree scorer against lm-eval-harness's HF backend.

The same model and the same multiple-choice requests (held-out questions of the world's tasks,
four choices each: one log-likelihood request per choice, as lm-eval's multiple-choice method
makes them) are scored by

* ``mergenet``: ``evaluator.scoring.score_sequences`` (prompt shared by a question's choices,
  short trees batched side by side, no padding scored), and
* ``lm-eval``: ``lm_eval.models.huggingface.HFLM.loglikelihood`` at each batch size asked for
  (its best is the reference; ``auto`` lets lm-eval pick),

in one process, with the same torch thread count, after one untimed warm-up each, each the best
of two timed runs (a shared machine's load swings between runs). The
log-probabilities must agree to 1e-4 or the run fails. Models: the world's base (2.56M
parameters) and a Llama of ~107M parameters (hidden 1024, 8 layers) initialised at random with
the world's tokenizer, since nothing can be downloaded here. Usage::

    python benchmarks/scoring_speed.py                       # both models (~10 min on 2 cores)
    python benchmarks/scoring_speed.py --models base --questions 32 --batch-sizes 8 32 64 auto
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

LARGE = {"hidden_size": 1024, "num_hidden_layers": 8, "intermediate_size": 2816, "heads": 16}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def requests_for(world, questions: int):
    from mergenet.evaluator.items import Item

    items: list[Item] = []
    by_task: dict[str, int] = {}
    for it in world.items("heldout"):
        if by_task.get(it.subject, 0) < questions:
            by_task[it.subject] = by_task.get(it.subject, 0) + 1
            items.append(it)
    return [(it, c) for it in items for c in range(len(it.choices))]


def large_model_dir(world, out: Path) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=LARGE["hidden_size"],
        num_hidden_layers=LARGE["num_hidden_layers"],
        intermediate_size=LARGE["intermediate_size"],
        num_attention_heads=LARGE["heads"],
        num_key_value_heads=LARGE["heads"],
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def time_mergenet(model_dir: Path, jobs) -> tuple[float, float, list[float]]:
    """Best of two timed runs (after a warm-up) of tokenising and scoring ``jobs``.

    Two figures: answers only (``totals=False``: each request's continuation log-probability,
    which is all lm-eval's ``loglikelihood`` returns) and with whole-row totals as well
    (``totals=True``, what ``evaluate_items`` needs for perplexity).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergenet.evaluator.encoding import encode_completions
    from mergenet.evaluator.scoring import score_sequences

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    best = {True: float("inf"), False: float("inf")}
    scores = []
    for _ in range(3):  # the first round is the warm-up
        for totals in (False, True):
            start = time.perf_counter()
            seqs = encode_completions(tok, [it for it, _ in jobs], [c for _, c in jobs])
            scores = score_sequences(model, seqs, totals=totals)
            best[totals] = min(best[totals], time.perf_counter() - start)
    return best[False], best[True], [s.answer_logprob for s in scores]


def time_lm_eval(
    model_dir: Path, jobs, batch_size: str, repeats: int = 2
) -> tuple[float, list[float]]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from mergenet.evaluator.encoding import completion_prompt, continuation

    lm = HFLM(pretrained=str(model_dir), device="cpu", batch_size=batch_size)
    requests = [
        Instance("loglikelihood", {}, (completion_prompt(it), continuation(it.choices[c])), i)
        for i, (it, c) in enumerate(jobs)
    ]
    lm.loglikelihood(requests[: min(len(requests), 64)], disable_tqdm=True)  # warm-up
    best, out = float("inf"), []
    for _ in range(repeats):  # best of ``repeats``, as mergenet's figure is a best of two
        start = time.perf_counter()
        out = lm.loglikelihood(requests, disable_tqdm=True)
        best = min(best, time.perf_counter() - start)
    return best, [lp for lp, _ in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["base", "large"], choices=["base", "large"])
    parser.add_argument("--questions", type=int, default=32, help="held-out questions per task")
    parser.add_argument(
        "--large-questions", type=int, default=8, help="questions per task for the large model"
    )
    parser.add_argument("--batch-sizes", nargs="+", default=["8", "32", "64", "auto"])
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
    print(f"machine: {cpu_name()}, {args.threads} torch threads; world {world.root.name}")
    print(f"load average at start {load_average()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            if name == "base":
                model_dir, jobs = world.base_dir, requests_for(world, args.questions)
            else:
                model_dir = large_model_dir(world, Path(tmp) / "large")
                jobs = requests_for(world, args.large_questions)
            ours, ours_totals, our_lp = time_mergenet(model_dir, jobs)
            theirs = {}
            for bs in args.batch_sizes:
                secs, their_lp = time_lm_eval(model_dir, jobs, bs)
                diff = max(abs(a - b) for a, b in zip(our_lp, their_lp, strict=True))
                if diff > 1e-4:
                    raise SystemExit(f"{name}: log-probabilities differ by {diff:.2e} (bs {bs})")
                theirs[bs] = secs
            best_bs = min(theirs, key=theirs.__getitem__)
            params = sum(p.numel() for p in _load(model_dir).parameters()) / 1e6
            rows.append((name, params, len(jobs), ours, ours_totals, theirs, best_bs))
            print(f"{name} done; load average {load_average()}")
            print_table(rows[-1:], args.batch_sizes)
    print_table(rows, args.batch_sizes)


def _load(model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir)


def print_table(rows, batch_sizes) -> None:
    head = " | ".join(f"lm-eval bs {b} (s)" for b in batch_sizes)
    print(
        f"\n| model | params | requests | mergenet (s) | mergenet + row totals (s) | {head} | "
        "mergenet req/s | lm-eval best req/s | speed-up vs best | with row totals |"
    )
    print("|---|---:|---:|---:|---:|" + "---:|" * len(batch_sizes) + "---:|---:|---:|---:|")
    for name, params, n, ours, ours_totals, theirs, best_bs in rows:
        cells = " | ".join(f"{theirs[b]:.2f}" for b in batch_sizes)
        best = theirs[best_bs]
        print(
            f"| {name} | {params:.1f}M | {n} | {ours:.2f} | {ours_totals:.2f} | {cells} | "
            f"{n / ours:.0f} | {n / best:.0f} (bs {best_bs}) | {best / ours:.2f}x | "
            f"{best / ours_totals:.2f}x |"
        )


if __name__ == "__main__":
    main()
