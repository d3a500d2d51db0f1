"""`mergenet dharma ...` and `mergenet eval`."""

import typer

dharma_app = typer.Typer(no_args_is_help=True)


def eval_command() -> None:
    """Evaluate a model folder on a Dharma set."""
