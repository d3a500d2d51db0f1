"""``mergenet demo``: the README's main command."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

DEFAULT_ROUNDS = 1
"""One round: ``--rounds 2 --budget 40`` took 13 min 51 s to the end (AMD EPYC 2 cores, load 3-5,
world db45132220f1), past the demo's 10-minute target, and round 2 accepted no version in 3 of 3
runs (README, Rounds), so a second round costs minutes and shows nothing yet."""


class DemoPool(StrEnum):
    process = "process"
    petals = "petals"


def demo_command(
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop everything after the summary (scripts, CI).")
    ] = False,
    budget: Annotated[
        int | None,
        typer.Option(
            help="Loop evaluations before the summary (default 80; 4 with --pool petals)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Evaluation processes (default: one per core).")
    ] = None,
    port: Annotated[
        int, typer.Option(help="Port for the coordinator (a free one if taken).")
    ] = 8000,
    rounds: Annotated[
        int,
        typer.Option(
            help="Rounds of contributions, --budget loop evaluations each: round 1 submits the "
            "world's deltas; in each later round every contributor but one (rotating) pulls the "
            "new core, fine-tunes it on fresh rows of its own tasks and submits."
        ),
    ] = DEFAULT_ROUNDS,
    pool: Annotated[
        DemoPool,
        typer.Option(
            help="Evaluation pool: processes here, or a Petals swarm on loopback (every "
            "evaluation merged and scored block range by block range on its server peers)."
        ),
    ] = DemoPool.process,
) -> None:
    """The whole network on this machine: world, chain, coordinator, 8 contributor nodes
    pulling, submitting and claiming, the merge loop; then a summary and the live page."""
    from mergenet.demo.run import PETALS_BUDGET, DemoConfig, run_demo

    if budget is None:
        budget = PETALS_BUDGET if pool is DemoPool.petals else 80
    if budget < 1:
        typer.secho("error: --budget must be at least 1", fg="red", err=True)
        raise typer.Exit(2)
    if rounds < 1:
        typer.secho("error: --rounds must be at least 1", fg="red", err=True)
        raise typer.Exit(2)
    cfg = DemoConfig(budget=budget, workers=workers, port=port, pool=pool.value, rounds=rounds)
    from mergenet.coordinator.cli import unwind_on_sigterm

    unwind_on_sigterm()  # a SIGTERM stops the chain, coordinator and peers as Ctrl-C does
    run_demo(cfg, exit_after=exit_after)
