"""Held-out standings: what the core after each round is compared with.

The references come from the world's own table (:func:`mergenet.ecosystem.report.evaluate_world`:
base, every contributor's model, the monolith, on the 1,280 held-out rows), computed when the
world folder has no ``report-heldout.json`` yet and cached there, so no step depends on a cache a
new user does not have. The **specialist oracle** is every task at its own specialist's accuracy
(the best of the contributors that train that task): what a router that always asked the right
contributor would score, an upper reference merges are measured against besides the monolith.

Held-out rows never select anything: the loop decides on fresh dev-split rows only.

Cost (AMD EPYC, 2 cores, world db45132220f1): one model on the 1,280 held-out rows takes ~20 s on
a quiet machine (the world table's ten models 3 min 25 s), so each round's core costs about that
once; the reference table is paid once per world.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mergenet.ecosystem.world import World
from mergenet.protocol.results import EvalResult

METRIC = "acc_choice"


@dataclass(frozen=True)
class References:
    """Held-out macro accuracy of the fixed comparison points."""

    base: float
    best_single: float
    best_single_name: str
    monolith: float
    oracle: float
    oracle_tasks: dict[str, float]
    """Per task: the specialist's accuracy (the max over contributors that train it)."""


def oracle_tasks(world: World, results: dict[str, EvalResult]) -> dict[str, float]:
    """Each task at its best specialist's held-out accuracy (a task nobody trains: the base)."""
    out: dict[str, float] = {}
    for task in world.spec.tasks:
        owners = [c.name for c in world.spec.contributors if task in c.tasks]
        pool = owners or ["base"]
        out[task] = max(getattr(results[n].tasks[task], METRIC) for n in pool)
    return out


def references(world: World, progress: Callable[[str, int, int], None] | None = None) -> References:
    """The reference standings (computing and caching the world's table if needed)."""
    from mergenet.ecosystem.report import evaluate_world

    results = evaluate_world(world, split="heldout", progress=progress)
    singles = {n: results[n].macro(METRIC) for n in world.contributor_names}
    best = max(singles, key=singles.__getitem__)
    tasks = oracle_tasks(world, results)
    return References(
        base=results["base"].macro(METRIC),
        best_single=singles[best],
        best_single_name=best,
        monolith=results["monolith"].macro(METRIC),
        oracle=sum(tasks.values()) / len(tasks),
        oracle_tasks=tasks,
    )


def evaluate_folder(world: World, folder: Path) -> EvalResult:
    """One model folder on the world's held-out rows."""
    from transformers import AutoTokenizer

    from mergenet.evaluator.modelio import load_causal_lm
    from mergenet.evaluator.scoring import evaluate_items

    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    model: Any = load_causal_lm(folder)[0]
    return evaluate_items(model, tokenizer, world.items("heldout"))


class CoreScores:
    """Held-out results of core versions, each version evaluated once (versions never change)."""

    def __init__(self, world: World, folder_of: Callable[[str], Path]):
        self.world = world
        self.folder_of = folder_of
        self._cache: dict[str, EvalResult] = {}

    def result(self, version_hash: str) -> EvalResult:
        if version_hash not in self._cache:
            self._cache[version_hash] = evaluate_folder(self.world, self.folder_of(version_hash))
        return self._cache[version_hash]

    def macro(self, version_hash: str) -> float:
        return self.result(version_hash).macro(METRIC)
