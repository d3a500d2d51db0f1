"""``mergenet coordinator up``: the API and the loop in one process (embedded default)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings
    from mergenet.protocol.evaluation import EvaluationPool

app = typer.Typer(no_args_is_help=True, help="Run the coordinator (API + evolutionary loop).")


class PoolKind(StrEnum):
    process = "process"
    celery = "celery"
    petals = "petals"


HostOpt = Annotated[str | None, typer.Option(help="Bind address (default MERGENET_HOST).")]
PortOpt = Annotated[int | None, typer.Option(help="Port (default MERGENET_PORT).")]
WorkersOpt = Annotated[
    int | None, typer.Option(help="Evaluation processes (default: one per core).")
]
BudgetOpt = Annotated[
    int | None, typer.Option(help="Stop proposing after this many evaluations (0 = never).")
]
PoolOpt = Annotated[
    PoolKind,
    typer.Option(
        help="Evaluation pool: in-process workers, Celery workers over Redis, or a Petals "
        "swarm (candidates merged and served block range by block range on its peers)."
    ),
]
PeersOpt = Annotated[
    int, typer.Option(help="--pool petals: server peers each model's blocks are split over.", min=1)
]
InitialPeersOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="--pool petals: join this swarm's DHT (multiaddr, repeatable) instead of starting "
        "a bootstrap peer on loopback."
    ),
]
CapacityOpt = Annotated[
    int,
    typer.Option(
        help="--pool celery: tasks kept in flight (about the workers' slots); --pool petals: "
        "evaluations in flight (each starts its own candidate peers).",
        min=1,
    ),
]
AdvertiseOpt = Annotated[
    str | None,
    typer.Option(
        help="--pool celery: the URL workers fetch artifacts from (default "
        "http://HOST:PORT; a worker's own --coordinator URL takes precedence)."
    ),
]
ChainOpt = Annotated[
    bool, typer.Option(help="Accrue rewards and record versions on the deployed chain.")
]
EpochOpt = Annotated[
    float | None,
    typer.Option(help="With --chain: publish a reward epoch this often (0: on demand)."),
]


def _coordinator_settings(
    workers: int | None, max_evaluations: int | None, chain: bool, epoch_seconds: float | None
) -> CoordinatorSettings:
    """The environment's settings (``MERGENET_COORDINATOR_…``) with the given flags on top."""
    from mergenet.coordinator.settings import CoordinatorSettings

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
    return cs.model_copy(update=updates)


def _celery_factory(
    redis_url: str, host: str, port: int, advertise_url: str | None, capacity: int
) -> Callable[[Coordinator], EvaluationPool]:
    from mergenet.coordinator.trust import trusted_celery_factory
    from mergenet.workers.run import check_redis

    check_redis(redis_url)  # WorkerStartError: one `error:` line, exit 2
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    # workers are untrusted: signed results only, payments and versions re-checked locally
    return trusted_celery_factory(advertise_url or f"http://{shown}:{port}", redis_url, capacity)


def unwind_on_sigterm() -> None:
    """SIGTERM raises ``SystemExit`` so ``coord.close()`` runs. uvicorn handles SIGTERM, shuts
    down, restores the previous handler and re-raises the signal; with the default handler
    that killed the process inside ``uvicorn.run`` and the ``finally`` never ran — measured:
    ``--pool petals`` left its bootstrap peer (own session) running after a SIGTERM."""
    import signal

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)


@app.command("up")
def up_command(
    host: HostOpt = None,
    port: PortOpt = None,
    workers: WorkersOpt = None,
    max_evaluations: BudgetOpt = None,
    pool: PoolOpt = PoolKind.process,
    capacity: CapacityOpt = 2,
    peers: PeersOpt = 2,
    initial_peers: InitialPeersOpt = None,
    advertise_url: AdvertiseOpt = None,
    chain: ChainOpt = False,
    epoch_seconds: EpochOpt = None,
) -> None:
    """Migrate the database, register the base version, start the loop and serve the API."""
    import logging

    import uvicorn

    from mergenet.config import get_settings
    from mergenet.coordinator.app import create_app
    from mergenet.coordinator.runtime import Coordinator

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    cs = _coordinator_settings(workers, max_evaluations, chain, epoch_seconds)
    bind_host, bind_port = host or settings.host, port or settings.port
    factory = None
    if pool is PoolKind.celery:
        factory = _celery_factory(settings.redis_url, bind_host, bind_port, advertise_url, capacity)
    elif pool is PoolKind.petals:
        from mergenet.coordinator.petals_pool import petals_pool_factory

        factory = petals_pool_factory(peers, initial_peers, capacity)
    unwind_on_sigterm()
    coord = Coordinator(settings, cs, pool_factory=factory).open()
    coord.start_loop()
    try:
        uvicorn.run(create_app(coord), host=bind_host, port=bind_port, log_level="warning")
    finally:
        coord.close()
