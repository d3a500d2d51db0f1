"""``mergenet coordinator up``: the API and the loop in one process (embedded default)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Run the coordinator (API + evolutionary loop).")


@app.command("up")
def up_command(
    host: Annotated[str | None, typer.Option(help="Bind address (default MERGENET_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default MERGENET_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Evaluation processes (default: one per core).")
    ] = None,
    max_evaluations: Annotated[
        int | None, typer.Option(help="Stop proposing after this many evaluations (0 = never).")
    ] = None,
    chain: Annotated[
        bool, typer.Option(help="Accrue rewards and record versions on the deployed chain.")
    ] = False,
) -> None:
    """Migrate the database, register the base version, start the loop and serve the API."""
    import logging

    import uvicorn

    from mergenet.config import get_settings
    from mergenet.coordinator.app import create_app
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    cs = CoordinatorSettings()
    updates: dict[str, object] = {}
    if workers is not None:
        updates["workers"] = workers
    if max_evaluations is not None:
        updates["max_evaluations"] = max_evaluations
    if chain:
        updates["chain"] = True
    cs = cs.model_copy(update=updates)
    coord = Coordinator(settings, cs).open()
    coord.start_loop()
    try:
        uvicorn.run(
            create_app(coord),
            host=host or settings.host,
            port=port or settings.port,
            log_level="warning",
        )
    finally:
        coord.close()
