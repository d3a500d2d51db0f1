"""What ``mergenet node finetune``'s settings learn, forget, and keep when merged.

For a few of the world's contributors (their ``train.jsonl`` rows), each setting fine-tunes the
world's base through ``node.finetune.finetune`` (the path a contributor runs): plain full
fine-tuning, LoRA, and full fine-tuning with an L2-to-parent or a KL-to-parent penalty at a
few λ. Every model is scored on the world's held-out rows (``evaluate_items``; 128 distinct
items per task) against the base:

* **own Δ**: accuracy (``acc_choice``) gained on the contributor's own tasks, and its answer
  loss change (negative = better);
* **others Δ**: the mean accuracy / answer-loss change on every other task (forgetting);
* **‖δ‖**: the delta's Frobenius norm;
* **TA w**: the contributors' deltas added by ``task_arithmetic`` (mergenet.merge_strategies)
  at weight 1 and 0.5 each: held-out macro accuracy, the own-task gain each contributor keeps
  in the merge (mean over contributors) and the change on tasks no merged contributor trains.

Fine-tunes are cached in the temporary folder (keyed by world, contributor and setting), so a
rerun only scores. One torch thread by default (``THREADS``). Usage::

    python benchmarks/finetune_forgetting.py             # alice, bob: full, l2 0.3, kl 3
    python benchmarks/finetune_forgetting.py --lora --l2 0.03 0.3 3 --kl 0.3 3 30
    python benchmarks/finetune_forgetting.py --l2 0.1 1 --kl              # more λ, no KL
    python benchmarks/finetune_forgetting.py --contributors alice bob grace --kl

On the shared 2-core AMD EPYC at load average 7-12 each 40-step fine-tune took 70-250 s (the
world's own took 23 s on a quiet machine): the second command (16 fine-tunes) ran 47 min, the
third (4 fine-tunes, full cached) 9 min, so the default's 6 fine-tunes take about 14 min. The
README's table came from the second, third and fourth commands.

One standard error of a task's accuracy on 128 items is up to 0.044; "others Δ" averages
≥ 8 tasks (≈ 1,000 items, paired with the base), so its noise is nearer 0.01.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

DEFAULT_CONTRIBUTORS = ("alice", "bob")
DEFAULT_L2 = (0.3,)
DEFAULT_KL = (3.0,)
WEIGHTS = (1.0, 0.5)
THREADS = 1
"""On the shared 2-core EPYC at load average ~10, 4 training steps took 40 s wall (4.8 s CPU)
with one torch thread and 133 s wall (22.5 s CPU) with two: the second thread spins waiting
for a core. On a quiet machine ``--threads 2`` is faster."""


@dataclass
class Single:
    contributor: str
    own_acc: float
    others_acc: float
    own_loss: float
    others_loss: float
    norm: float
    seconds: float


@dataclass
class Row:
    label: str
    singles: list[Single] = field(default_factory=list)
    merges: dict[float, dict[str, float]] = field(default_factory=dict)

    def mean(self, attr: str) -> float:
        return statistics.fmean(getattr(s, attr) for s in self.singles)


def settings(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(label, FinetuneConfig) per setting; every penalty explicit, whatever the defaults."""
    from mergenet.node.finetune import FinetuneConfig

    def cfg(lora: bool = False, l2: float = 0.0, kl: float = 0.0) -> FinetuneConfig:
        return FinetuneConfig(steps=args.steps, lora=lora, l2_to_parent=l2, kl_to_parent=kl)

    out = [("full", cfg())] + ([("lora", cfg(lora=True))] if args.lora else [])
    out += [(f"l2 {lam:g}", cfg(l2=lam)) for lam in args.l2]
    out += [(f"kl {lam:g}", cfg(kl=lam)) for lam in args.kl]
    return out


class Bench:
    """The world's base, tokenizer and held-out items, and the scoring of one state dict."""

    def __init__(self, world: Any, split: str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from mergenet.deltas.models import ModelSource

        self.world = world
        self.tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
        self.items = world.items(split)
        self.model = AutoModelForCausalLM.from_pretrained(world.base_dir, dtype="float32").eval()
        self.base = ModelSource(world.base_dir).state_dict()
        self.tasks_of = {c.name: c.tasks for c in world.spec.contributors}
        self.base_result = self.score(self.base)

    def score(self, state: dict[str, torch.Tensor]) -> Any:
        from mergenet.evaluator.scoring import evaluate_items

        self.model.load_state_dict(state, strict=False)
        return evaluate_items(self.model, self.tokenizer, self.items)

    def change(self, result: Any, tasks: set[str], attr: str) -> float:
        """Mean over ``tasks`` of ``result`` − base for ``attr``."""
        base = self.base_result.tasks
        return statistics.fmean(
            getattr(result.tasks[t], attr) - getattr(base[t], attr) for t in tasks
        )

    def merge(self, artifacts: list[Path], weight: float) -> dict[str, torch.Tensor]:
        from mergenet.merge_strategies import engine

        k = len(artifacts)
        return engine.merge_state_dict("task_arithmetic", self.base, artifacts, [weight] * k)


def finetuned(bench: Bench, name: str, label: str, cfg: Any) -> tuple[Path, float]:
    """The output folder's artifact for ``name`` under ``cfg`` (cached) and its training time."""
    from mergenet.node.data import read_rows
    from mergenet.node.finetune import finetune

    key = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:10]
    out = Path(tempfile.gettempdir()) / f"forgetting-{bench.world.root.name}-{name}-{key}"
    if not (out / "contribution.json").exists():
        rows = read_rows(bench.world.contributor_data(name))
        finetune(bench.world.base_dir, "base", rows, out, cfg)
    meta = json.loads((out / "contribution.json").read_text())
    artifact = out / ("adapter" if meta["kind"] == "lora" else "delta.safetensors")
    print(
        f"  {label} {name}: {meta['seconds']:.0f} s, loss {meta['first_loss']:.3f} → "
        f"{meta['last_loss']:.3f}",
        flush=True,
    )
    return artifact, float(meta["seconds"])


def single(bench: Bench, name: str, artifact: Path, seconds: float) -> Single:
    state = bench.merge([artifact], 1.0)
    norm = sum(float((state[n] - t).pow(2).sum()) for n, t in bench.base.items()) ** 0.5
    result = bench.score(state)
    own = set(bench.tasks_of[name])
    others = set(bench.base_result.tasks) - own
    return Single(
        contributor=name,
        own_acc=bench.change(result, own, "acc_choice"),
        others_acc=bench.change(result, others, "acc_choice"),
        own_loss=bench.change(result, own, "answer_loss"),
        others_loss=bench.change(result, others, "answer_loss"),
        norm=norm,
        seconds=seconds,
    )


def merged(
    bench: Bench, names: list[str], artifacts: list[Path], weight: float
) -> dict[str, float]:
    result = bench.score(bench.merge(artifacts, weight))
    owned = {t for n in names for t in bench.tasks_of[n]}
    untouched = set(bench.base_result.tasks) - owned
    keep = [bench.change(result, set(bench.tasks_of[n]), "acc_choice") for n in names]
    return {
        "macro": result.macro("acc_choice"),
        "own": statistics.fmean(keep),
        "untouched": bench.change(result, untouched, "acc_choice") if untouched else float("nan"),
    }


def run_setting(bench: Bench, names: list[str], label: str, cfg: Any) -> Row:
    row = Row(label)
    artifacts = []
    for name in names:
        artifact, seconds = finetuned(bench, name, label, cfg)
        artifacts.append(artifact)
        row.singles.append(single(bench, name, artifact, seconds))
    for w in WEIGHTS:
        row.merges[w] = merged(bench, names, artifacts, w)
    print(f"{label}: {table_line(row)}", flush=True)
    return row


def table_line(row: Row) -> str:
    cells = [
        f"{row.mean('own_acc'):+.3f}",
        f"{row.mean('others_acc'):+.3f}",
        f"{row.mean('own_loss'):+.3f}",
        f"{row.mean('others_loss'):+.3f}",
        f"{row.mean('norm'):.2f}",
    ]
    for w in WEIGHTS:
        m = row.merges[w]
        cells += [f"{m['macro']:.3f}", f"{m['own']:+.3f}", f"{m['untouched']:+.3f}"]
    cells.append(f"{row.mean('seconds'):.0f}")
    return f"| {row.label} | " + " | ".join(cells) + " |"


def print_table(bench: Bench, names: list[str], rows: list[Row]) -> None:
    head = ["own Δacc", "others Δacc", "own Δloss", "others Δloss", "‖δ‖"]
    for w in WEIGHTS:
        head += [f"TA×{w:g} macro", f"TA×{w:g} own Δ", f"TA×{w:g} untouched Δ"]
    head.append("train s")
    base_macro = bench.base_result.macro("acc_choice")
    print(f"\nheld-out, {', '.join(names)} fine-tuned from the base; base macro {base_macro:.3f}")
    print("| setting | " + " | ".join(head) + " |")
    print("|---|" + "---|" * len(head))
    for row in rows:
        print(table_line(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", type=Path, help="use this world folder as it is (no build)")
    ap.add_argument("--contributors", nargs="*", default=list(DEFAULT_CONTRIBUTORS))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--l2", nargs="*", type=float, default=list(DEFAULT_L2))
    ap.add_argument("--kl", nargs="*", type=float, default=list(DEFAULT_KL))
    ap.add_argument("--lora", action="store_true", help="also LoRA (node finetune --lora)")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--threads", type=int, default=THREADS, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from mergenet.config import get_settings
    from mergenet.ecosystem.spec import WorldSpec
    from mergenet.ecosystem.world import World, build_world

    spec = WorldSpec(seed=get_settings().world_seed)
    world = World(args.world, spec) if args.world else build_world(spec, get_settings().world_root)
    unknown = sorted(set(args.contributors) - set(world.contributor_names))
    if unknown:
        ap.error(f"no such contributor: {', '.join(unknown)} (have {world.contributor_names})")
    started = time.time()
    bench = Bench(world, args.split)
    rows = [run_setting(bench, args.contributors, label, cfg) for label, cfg in settings(args)]
    print_table(bench, args.contributors, rows)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{time.time() - started:.0f} s in all; world {world.root.name}; load now {load}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
