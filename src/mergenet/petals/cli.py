"""``mergenet petals up|down|status``: a private Petals swarm on loopback.

The swarm's state (PIDs = process-group ids, multiaddrs, DHT prefix, logs) lives in
``<data dir>/petals/<name>/``, so ``down`` works from any later shell.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer

from mergenet.config import get_settings
from mergenet.petals import procs
from mergenet.petals.env import PetalsEnvMissing
from mergenet.petals.procs import PeerStartError

app = typer.Typer(no_args_is_help=True, help="A private Petals swarm on loopback.")


def _state_root(state_dir: Path | None) -> Path:
    if state_dir is not None:
        return state_dir

    return get_settings().data_dir / "petals"


@app.command("up")
def up_command(
    model: Path = typer.Option(
        ...,
        "--model",
        exists=True,
        file_okay=False,
        help="HF model folder to serve (the current core version's folder).",
    ),
    servers: int = typer.Option(2, min=1, help="Servers splitting the model's blocks."),
    name: str = typer.Option("core", help="Swarm name (its state folder)."),
    prefix: str | None = typer.Option(None, help="DHT prefix (default: the swarm name)."),
    state_dir: Path | None = typer.Option(None, help="Default: <data dir>/petals."),
    timeout: float = typer.Option(180.0, help="Seconds to wait for each peer."),
) -> None:
    """Start a DHT bootstrap peer and servers splitting MODEL's blocks (CPU, float32)."""

    from mergenet.petals import swarm  # lazy: its model views import torch

    try:
        state = swarm.up(
            model,
            _state_root(state_dir),
            name=name,
            prefix=prefix,
            servers=servers,
            timeout=timeout,
        )
    except (PetalsEnvMissing, PeerStartError, RuntimeError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    for p in state.peers:
        where = f"blocks {p.blocks[0]}:{p.blocks[1]}" if p.blocks else "bootstrap"
        typer.echo(f"{p.role:6} pid {p.pid:<7} {where:12} {p.maddr}")
    typer.echo(f"prefix {state.prefix}; initial peer {state.initial_peers[0]}")


@app.command("down")
def down_command(
    name: str = typer.Option("core", help="Swarm name."),
    state_dir: Path | None = typer.Option(None, help="Default: <data dir>/petals."),
) -> None:
    """Stop every peer of the swarm (each as a whole process group)."""

    from mergenet.petals import swarm  # lazy: its model views import torch

    stopped = swarm.down(_state_root(state_dir), name)
    typer.echo(f"stopped {len(stopped)} peer(s)" if stopped else f"swarm {name!r} is not up")


@app.command("status")
def status_command(
    name: str = typer.Option("core", help="Swarm name."),
    state_dir: Path | None = typer.Option(None, help="Default: <data dir>/petals."),
) -> None:
    """Print the swarm's state as JSON, with whether each peer group is alive."""

    from mergenet.petals import swarm  # lazy: its model views import torch

    folder = swarm.swarm_dir(_state_root(state_dir), name)
    if not (folder / swarm.STATE_FILE).exists():
        typer.echo(f"swarm {name!r} is not up", err=True)
        raise typer.Exit(1)
    state = swarm.SwarmState.load(folder)
    out = asdict(state)
    for p in out["peers"]:
        p["alive"] = procs.group_alive(p["pid"])
    typer.echo(json.dumps(out, indent=2))
