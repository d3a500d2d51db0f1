"""The ``mergenet`` command: one typer app with a sub-app or command per component.

Each component keeps its own ``cli.py`` and imports its heavy dependencies (torch,
transformers, web3) inside the command functions, so ``mergenet --help`` stays fast.

Errors have one handler, here: any :class:`mergenet.errors.MergenetError` a command raises
(whatever its kind) prints one ``error: <message>`` line on stderr and exits with status 2;
commands do not catch them themselves. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from mergenet.coordinator.cli import app as coordinator_app
from mergenet.demo.cli import demo_command
from mergenet.ecosystem.cli import app as world_app
from mergenet.ecosystem.eval_cli import eval_command
from mergenet.errors import MergenetError
from mergenet.evaluator.dharma_cli import dharma_app
from mergenet.merge_strategies.cli import merge_command
from mergenet.node.audit import audit_command
from mergenet.node.cli import app as node_app
from mergenet.petals.cli import app as petals_app
from mergenet.rewards.cli import chain_app, rewards_app
from mergenet.workers.cli import worker_command


class _OneErrorHandler(TyperGroup):
    """The root command group: turns a ``MergenetError`` from any sub-command into one line."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except MergenetError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    name="mergenet",
    cls=_OneErrorHandler,
    help="mergenet: contribute fine-tuning deltas, merge them into a core model, earn rewards.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(world_app, name="world", help="Build and inspect the self-contained model world.")
app.add_typer(dharma_app, name="dharma", help="Build Dharma benchmark sets.")
app.command("eval")(eval_command)
app.command("merge")(merge_command)
app.add_typer(chain_app, name="chain", help="Start, inspect and stop the local test chain.")
app.add_typer(rewards_app, name="rewards", help="Reward ledger, epochs and claims.")
app.add_typer(petals_app, name="petals", help="A private Petals swarm for model-parallel scoring.")
app.add_typer(node_app, name="node", help="Contribute: keys, pull, finetune, submit, claim.")
app.add_typer(coordinator_app, name="coordinator", help="Run the coordinator: API and merge loop.")
app.command("worker")(worker_command)
app.command("audit")(audit_command)


app.command("demo")(demo_command)


if __name__ == "__main__":
    app()
