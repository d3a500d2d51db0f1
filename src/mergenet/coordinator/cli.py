"""``mergenet coordinator up``: the API and the loop in one process (embedded default)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Run the coordinator (API + evolutionary loop).")


class PoolKind(StrEnum):
    process = "process"
    celery = "celery"


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
    pool: Annotated[
        PoolKind,
        typer.Option(help="Evaluation pool: in-process workers, or Celery workers over Redis."),
    ] = PoolKind.process,
    capacity: Annotated[
        int,
        typer.Option(help="--pool celery: tasks kept in flight (about the workers' slots).", min=1),
    ] = 2,
    advertise_url: Annotated[
        str | None,
        typer.Option(
            help="--pool celery: the URL workers fetch artifacts from (default "
            "http://HOST:PORT; a worker's own --coordinator URL takes precedence)."
        ),
    ] = None,
    chain: Annotated[
        bool, typer.Option(help="Accrue rewards and record versions on the deployed chain.")
    ] = False,
    epoch_seconds: Annotated[
        float | None,
        typer.Option(help="With --chain: publish a reward epoch this often (0: on demand)."),
    ] = None,
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
        updates["loop"] = cs.loop.model_copy(update={"max_evaluations": max_evaluations})
    if chain:
        updates["chain"] = True
    if epoch_seconds is not None:
        updates["epoch_seconds"] = epoch_seconds
    cs = cs.model_copy(update=updates)
    bind_host, bind_port = host or settings.host, port or settings.port
    factory = None
    if pool is PoolKind.celery:
        from mergenet.workers.celery_pool import celery_pool_factory
        from mergenet.workers.run import check_redis

        check_redis(settings.redis_url)  # WorkerStartError: one `error:` line, exit 2
        shown = "127.0.0.1" if bind_host in ("0.0.0.0", "::", "") else bind_host
        factory = celery_pool_factory(
            advertise_url or f"http://{shown}:{bind_port}", settings.redis_url, capacity
        )
    coord = Coordinator(settings, cs, pool_factory=factory).open()
    coord.start_loop()
    try:
        uvicorn.run(
            create_app(coord),
            host=bind_host,
            port=bind_port,
            log_level="warning",
        )
    finally:
        coord.close()
