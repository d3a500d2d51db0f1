"""CLI for the chain and rewards (placeholder until the rewards work lands)."""

import typer

chain_app = typer.Typer(no_args_is_help=True)
rewards_app = typer.Typer(no_args_is_help=True)
