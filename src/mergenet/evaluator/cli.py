"""`mergenet dharma ...` and `mergenet eval`."""

import typer

from mergenet.evaluator.dharma_cli import dharma_app as dharma_app  # re-export


def eval_command() -> None:
    """Evaluate a model folder on a Dharma set."""
