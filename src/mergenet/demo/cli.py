"""``mergenet demo``: the README's main command."""

from __future__ import annotations

from typing import Annotated

import typer


def demo_command(
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop everything after the summary (scripts, CI).")
    ] = False,
    budget: Annotated[int, typer.Option(help="Loop evaluations before the summary.")] = 80,
    workers: Annotated[
        int | None, typer.Option(help="Evaluation processes (default: one per core).")
    ] = None,
    port: Annotated[
        int, typer.Option(help="Port for the coordinator (a free one if taken).")
    ] = 8000,
) -> None:
    """The whole network on this machine: world, chain, coordinator, 8 contributor nodes
    pulling, submitting and claiming, the merge loop; then a summary and the live page."""
    from mergenet.demo.run import DemoConfig, run_demo

    if budget < 1:
        typer.secho("error: --budget must be at least 1", fg="red", err=True)
        raise typer.Exit(2)
    run_demo(DemoConfig(budget=budget, workers=workers, port=port), exit_after=exit_after)
