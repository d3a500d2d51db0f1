"""The world's evaluation table: base, every contributor and the monolith on held-out Dharma."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

from rich import box
from rich.table import Table

from mergenet.ecosystem.world import World
from mergenet.evaluator.modelio import load_causal_lm
from mergenet.protocol.results import EvalResult


def evaluate_world(
    world: World,
    *,
    split: str = "heldout",
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, EvalResult]:
    """Evaluate base, contributors and monolith on ``split``; cached in the world folder."""
    from transformers import AutoTokenizer

    from mergenet.evaluator.scoring import evaluate_items

    cache = world.root / f"report-{split}.json"
    if cache.exists():
        data = json.loads(cache.read_text())
        return {name: EvalResult.from_dict(r) for name, r in data.items()}
    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    items = world.items(split)
    models = {"base": world.base_dir}
    models |= {name: world.contributor_dir(name) for name in world.contributor_names}
    models["monolith"] = world.monolith_dir
    results: dict[str, EvalResult] = {}
    for name, path in models.items():
        results[name] = evaluate_items(
            load_causal_lm(path)[0],
            tokenizer,
            items,
            progress=partial(progress, name) if progress else None,
        )
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({n: r.to_dict() for n, r in results.items()}, indent=2))
    tmp.rename(cache)
    return results


def world_table(world: World, results: dict[str, EvalResult], metric: str = "acc_choice") -> Table:
    """Per-task ``metric`` for every model; each contributor's own tasks are marked with *."""
    tasks = list(world.spec.tasks)
    own = {c.name: set(c.tasks) for c in world.spec.contributors}
    table = Table(
        title=f"held-out Dharma, {metric} (own tasks marked *)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    table.add_column("model", no_wrap=True)
    for t in tasks:
        table.add_column(t, justify="right", overflow="fold", min_width=5)
    table.add_column("macro", justify="right", min_width=5)
    for name, res in results.items():
        cells = []
        for t in tasks:
            value = getattr(res.tasks[t], metric)
            cells.append(f"{value:.2f}{'*' if t in own.get(name, ()) else ''}")
        table.add_row(name, *cells, f"{res.macro(metric):.3f}")
    return table


def markdown_table(world: World, results: dict[str, EvalResult], metric: str = "acc_choice") -> str:
    tasks = list(world.spec.tasks)
    own = {c.name: set(c.tasks) for c in world.spec.contributors}
    lines = ["| model | " + " | ".join(tasks) + " | macro |", "|---" * (len(tasks) + 2) + "|"]
    for name, res in results.items():
        cells = [
            f"{getattr(res.tasks[t], metric):.2f}{'*' if t in own.get(name, ()) else ''}"
            for t in tasks
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {res.macro(metric):.3f} |")
    return "\n".join(lines)
