"""``mergenet eval``: score a model on a Dharma set, by default the world's held-out set.

It lives with the world rather than in ``evaluator/`` because of that default: the evaluator
knows nothing of the world (the world is built on the evaluator, not the other way round).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from mergenet.config import get_settings
from mergenet.ecosystem.spec import WorldSpec
from mergenet.ecosystem.world import world_dir
from mergenet.evaluator.dharma import DharmaError, read_jsonl_rows
from mergenet.evaluator.items import Item
from mergenet.evaluator.modelio import load_causal_lm
from mergenet.evaluator.sampling import sample_for_scoring
from mergenet.protocol.jsonl import read_jsonl
from mergenet.protocol.results import EvalResult

_err = Console(stderr=True)


def result_table(result: EvalResult, title: str) -> Table:
    table = Table(title=title)
    for col in ("task", "rows", "acc (choice LL)", "acc (letter)", "PPL", "answer loss"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for t in result.tasks.values():
        table.add_row(
            t.task,
            str(t.n_rows),
            f"{t.acc_choice:.3f}",
            f"{t.acc_letter:.3f}",
            f"{t.ppl:.3f}",
            f"{t.answer_loss:.3f}",
        )
    table.add_section()
    table.add_row(
        "macro",
        str(sum(t.n_rows for t in result.tasks.values())),
        f"{result.macro('acc_choice'):.3f}",
        f"{result.macro('acc_letter'):.3f}",
        f"{result.macro('ppl'):.3f}",
        f"{result.macro('answer_loss'):.3f}",
    )
    return table


def _default_benchmark() -> Path:
    settings = get_settings()
    path = (
        world_dir(WorldSpec(seed=settings.world_seed), settings.world_root)
        / "dharma"
        / "heldout.jsonl"
    )
    if not path.exists():
        _err.print(
            "[red]No --benchmark given and the world is not built.[/] "
            "Run `mergenet world build` or pass --benchmark FILE.jsonl."
        )
        raise typer.Exit(2)
    return path


def eval_command(
    model: Annotated[
        str, typer.Argument(help="A model folder (HF layout) or, when online, a hub id.")
    ],
    benchmark: Annotated[
        Path | None,
        typer.Option(help="Dharma JSONL file; default: the world's held-out set."),
    ] = None,
    n: Annotated[
        int | None,
        typer.Option(
            min=1, help="Rows per task (seeded sample); n² rows for the loss. Default: all."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed when --n is given.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Evaluate a causal LM on a Dharma set: per-task accuracy (two ways), PPL and answer loss."""
    # lazy: the scorer and the model loader import torch and transformers (`--help` stays fast)
    from mergenet.evaluator.scoring import evaluate_items

    path = benchmark or _default_benchmark()
    try:
        read_jsonl_rows(path)  # validates every row; errors name the file and line
    except (OSError, DharmaError) as exc:
        _err.print(f"[red]Cannot read the benchmark:[/] {exc}")
        raise typer.Exit(2) from exc
    rows = read_jsonl(path)
    if n is None:
        items = [Item.from_dharma_row(r) for r in rows]
        loss_items = items
    else:
        sample = sample_for_scoring(rows, n, seed)
        items = [Item.from_dharma_row(r) for rs in sample.rows.values() for r in rs]
        loss_items = [Item.from_dharma_row(r) for rs in sample.loss_rows.values() for r in rs]
    try:
        lm, tokenizer = load_causal_lm(model)
    except (OSError, ValueError) as exc:
        _err.print(f"[red]Cannot load the model {model!r}:[/] {exc}")
        raise typer.Exit(2) from exc
    with Progress(console=_err, transient=True, disable=as_json) as progress:
        bar = progress.add_task("scoring", total=None)
        result = evaluate_items(
            lm,
            tokenizer,
            items,
            loss_items,
            progress=lambda d, t: progress.update(bar, completed=d, total=t),
        )
    if as_json:
        typer.echo(json.dumps({"model": model, "benchmark": str(path), **result.to_dict()}))
    else:
        Console().print(result_table(result, f"{model} on {path.name}"))
