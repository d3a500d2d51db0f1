"""CLI for merging (placeholder until the merge engine lands)."""

import typer


def merge_command() -> None:
    """Merge a base with deltas using a registered strategy."""
    typer.echo("the merge engine is not built yet")
    raise typer.Exit(1)
