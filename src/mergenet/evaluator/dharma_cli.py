"""``mergenet dharma build``: a Dharma set from a config, reproducibly."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from mergenet.evaluator.dharma import LETTERS, DharmaError
from mergenet.evaluator.dharma_build import build_dharma, dumps_rows, letter_counts, write_rows
from mergenet.evaluator.dharma_config import load_config

dharma_app = typer.Typer(no_args_is_help=True)
_err = Console(stderr=True)


@dharma_app.command("build")
def build_command(
    config: Annotated[
        Path, typer.Argument(help="Config YAML (dataset_size, data_seed, force_dist, benchmarks).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the JSONL set.")],
) -> None:
    """Build a Dharma set: sample each benchmark's source, balance letters, shuffle, write.

    The output is byte-for-byte a function of the config and its source files.
    """
    console = Console()
    try:
        cfg = load_config(config)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("benchmarks", total=None)

            def report(stage: str, done: int, total: int) -> None:
                bar.update(task, description=f"sampling {stage}", completed=done, total=total)

            rows = build_dharma(cfg, progress=report)
        write_rows(rows, out)
    except DharmaError as exc:
        _err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc
    counts = letter_counts(rows)
    used = sorted({letter for c in counts.values() for letter in c}, key=LETTERS.index)
    table = Table(title=f"{out} ({len(rows)} rows)")
    table.add_column("benchmark")
    table.add_column("rows", justify="right")
    for letter in used:
        table.add_column(letter, justify="right")
    for name, c in counts.items():
        table.add_row(name, str(sum(c.values())), *(str(c.get(x, 0)) for x in used))
    console.print(table)
    console.print(f"sha256 {hashlib.sha256(dumps_rows(rows)).hexdigest()}")
