"""``mergenet worker``: a Celery evaluation worker that fetches artifacts over HTTP."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mergenet.config import get_settings

WorkerIdOpt = Annotated[
    str | None, typer.Option(help="The id the operator issued this worker (MERGENET_WORKER_ID).")
]
SecretFileOpt = Annotated[
    Path | None,
    typer.Option(
        help="File holding the secret the operator issued for --worker-id "
        "(MERGENET_WORKER_SECRET_FILE); results are signed with it, the coordinator "
        "refuses unsigned ones."
    ),
]


def _export_credential(worker_id: str | None, secret_file: Path | None) -> None:
    """The Celery task reads its credential from the environment (``workers.credentials``);
    only the file's path travels there, never the secret itself."""
    if worker_id is not None:
        os.environ["MERGENET_WORKER_ID"] = worker_id
    if secret_file is not None:
        os.environ["MERGENET_WORKER_SECRET_FILE"] = str(secret_file)


def worker_command(
    coordinator: Annotated[
        str | None,
        typer.Option(
            "--coordinator",
            help="Coordinator URL the worker fetches artifacts from (default "
            "MERGENET_COORDINATOR_URL).",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(help="Tasks run at once (one torch thread each).", min=1)
    ] = 1,
    redis_url: Annotated[
        str | None, typer.Option(help="Broker URL (default MERGENET_REDIS_URL).")
    ] = None,
    pool: Annotated[
        str, typer.Option(help="Celery pool: auto (solo for 1, else prefork), solo, prefork.")
    ] = "auto",
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Artifact cache (default <MERGENET_CACHE_DIR>/worker)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Celery node name (default mergenet-<pid>@<host>).")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
    worker_id: WorkerIdOpt = None,
    secret_file: SecretFileOpt = None,
) -> None:
    """Score the coordinator's candidates: take tasks from Redis, fetch by content hash."""
    # lazy: the worker pulls in Celery, torch and the evaluator; `mergenet --help` must not
    from mergenet.workers.run import run_worker

    _export_credential(worker_id, secret_file)
    try:
        run_worker(
            coordinator or get_settings().coordinator_url,
            concurrency=concurrency,
            redis_url=redis_url,
            pool=pool,
            cache_dir=cache_dir,
            name=name,
            loglevel=loglevel,
        )
    except SystemExit as exc:
        raise typer.Exit(exc.code if isinstance(exc.code, int) else 1) from None
