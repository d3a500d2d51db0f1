"""`mergenet world ...`: build the self-contained model world and show its evaluation table."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from mergenet.config import get_settings
from mergenet.ecosystem.report import evaluate_world, markdown_table, world_table
from mergenet.ecosystem.spec import WorldSpec
from mergenet.ecosystem.world import World, build_world, world_dir
from mergenet.protocol.results import EvalResult

app = typer.Typer(no_args_is_help=True)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        console=console,
    )


def build_with_progress(*, seed: int | None = None, console: Console | None = None) -> World:
    """Build (or reuse) the default world with one progress bar per stage."""

    settings = get_settings()
    spec = WorldSpec(seed=settings.world_seed if seed is None else seed)
    console = console or Console(stderr=True)
    if (world_dir(spec, settings.world_root) / "manifest.json").exists():
        console.print(f"world {spec.digest()} is cached at {world_dir(spec, settings.world_root)}")
    bars: dict[str, TaskID] = {}
    with _progress(console) as progress:

        def on_stage(stage: str, done: int, total: int, note: str) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(stage, total=total, note="")
            progress.update(bars[stage], completed=done, total=total, note=note)

        return build_world(spec, settings.world_root, progress=on_stage)


def evaluate_with_progress(
    world: World, *, console: Console | None = None
) -> dict[str, EvalResult]:
    bars: dict[str, TaskID] = {}
    with _progress(console or Console(stderr=True)) as progress:

        def on_model(name: str, done: int, total: int) -> None:
            if name not in bars:
                bars[name] = progress.add_task(f"evaluate {name}", total=total, note="")
            progress.update(bars[name], completed=done, total=total)

        return evaluate_world(world, progress=on_model)


@app.command("build")
def build_command(
    seed: Annotated[
        int | None, typer.Option(help="World seed (default: MERGENET_WORLD_SEED or 0).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the world's paths as JSON.")
    ] = False,
) -> None:
    """Build the world: tokenizer, base, 8 contributors (model + delta), monolith, Dharma sets.

    Deterministic from one seed and cached: a second build is instant.
    """
    world = build_with_progress(seed=seed)
    info = {
        "root": str(world.root),
        "digest": world.spec.digest(),
        "tokenizer": str(world.tokenizer_dir),
        "base": str(world.base_dir),
        "monolith": str(world.monolith_dir),
        "contributors": {
            name: {
                "model": str(world.contributor_dir(name)),
                "delta": str(world.delta_path(name)),
                "data": str(world.contributor_data(name)),
            }
            for name in world.contributor_names
        },
        "dharma": {s: str(world.dharma_path(s)) for s in ("dev", "heldout")},
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        Console().print(f"world built at [bold]{world.root}[/]")


@app.command("table")
def table_command(
    metric: Annotated[
        str, typer.Option(help="acc_choice, acc_letter, ppl or answer_loss.")
    ] = "acc_choice",
    markdown: Annotated[
        bool, typer.Option(help="Print a Markdown table (for the README).")
    ] = False,
) -> None:
    """Held-out Dharma table: base, every contributor and the monolith (builds if needed)."""

    if metric not in ("acc_choice", "acc_letter", "ppl", "answer_loss"):
        raise typer.BadParameter(
            "choose acc_choice, acc_letter, ppl or answer_loss", param_hint="--metric"
        )
    world = build_with_progress()
    results = evaluate_with_progress(world)
    if markdown:
        typer.echo(markdown_table(world, results, metric))
    else:
        Console().print(world_table(world, results, metric))
