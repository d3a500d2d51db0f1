"""Run one Celery evaluation worker for a coordinator: ``run_worker`` (``mergenet worker``).

The worker takes tasks from Redis (a recipe and a sample spec each), fetches what a recipe
names from the coordinator over HTTP by content hash into its cache
(:mod:`mergenet.workers.fetch`), scores the candidate and returns the measurements. It
needs no shared disk and no database: only the broker and the coordinator's URL.

Both are checked before Celery starts, so a typo in a URL is one clear line and exit code 2
rather than a worker that sits there retrying (Celery's default) while the loop starves.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import httpx
import redis
from kombu.utils.url import maybe_sanitize_url

from mergenet.config import get_settings
from mergenet.deltas.safe_json import restore_recursion_limit
from mergenet.errors import Unavailable
from mergenet.workers.celery_app import make_app
from mergenet.workers.fetch import configure_worker, default_cache_dir

POOLS = ("auto", "solo", "prefork")


class WorkerStartError(Unavailable):
    """A precondition of starting the worker failed; the message says what to fix."""


def redacted(url: str) -> str:
    """The URL with any password masked (it is printed and logged)."""
    return str(maybe_sanitize_url(url))


def check_redis(redis_url: str, timeout: float = 3.0) -> None:
    """PING the broker; a clear error if it is unreachable or refuses us."""
    try:
        client = redis.Redis.from_url(
            redis_url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as exc:
        raise WorkerStartError(
            f"cannot reach Redis at {redacted(redis_url)} ({exc}); start it, or point "
            "MERGENET_REDIS_URL (or the worker's --redis-url) at it"
        ) from None


def check_coordinator(coordinator_url: str, timeout: float = 5.0) -> None:
    """GET /healthz on the coordinator; a clear error if it does not answer ok."""
    if not coordinator_url.startswith(("http://", "https://")):
        raise WorkerStartError(
            f"the coordinator URL must start with http:// or https://, got {coordinator_url!r}"
        )
    try:
        r = httpx.get(coordinator_url.rstrip("/") + "/healthz", timeout=timeout)
    except httpx.HTTPError as exc:
        raise WorkerStartError(
            f"cannot reach the coordinator at {coordinator_url} ({exc}); start it with "
            "`mergenet coordinator up --pool celery` or pass the right --coordinator URL"
        ) from None
    if r.status_code != 200:
        raise WorkerStartError(
            f"{coordinator_url}/healthz answered {r.status_code}: is this a mergenet coordinator?"
        )


def celery_argv(pool: str, concurrency: int, name: str, loglevel: str) -> list[str]:
    """The ``celery worker`` arguments (gossip/mingle off: workers never talk to each other)."""
    return [
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--hostname",
        name,
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]


def run_worker(
    coordinator_url: str,
    *,
    concurrency: int = 1,
    redis_url: str | None = None,
    pool: str = "auto",
    cache_dir: Path | None = None,
    name: str | None = None,
    loglevel: str = "INFO",
) -> None:
    """Start a Celery evaluation worker in this process and serve until stopped (SIGTERM:
    finish the running task, then exit).

    ``pool="auto"`` is ``solo`` for one slot (no fork, least memory) and ``prefork`` for more;
    each prefork child keeps its own model cache. Prints one line and exits with status 2
    (``SystemExit(2)``) when Redis or the coordinator cannot be reached or an option is bad,
    so a supervisor sees a configuration error rather than a crash loop.
    """
    restore_recursion_limit()  # py_ecc (eth-account, web3) raised it to 100,000
    settings = get_settings()
    url = redis_url or settings.redis_url
    try:
        if concurrency < 1:
            raise WorkerStartError(f"--concurrency must be at least 1, got {concurrency}")
        if pool not in POOLS:
            raise WorkerStartError(f"--pool must be one of {', '.join(POOLS)}, got {pool!r}")
        check_redis(url)
        check_coordinator(coordinator_url)
    except WorkerStartError as exc:
        print(f"mergenet worker: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

    chosen = pool if pool != "auto" else ("solo" if concurrency == 1 else "prefork")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    configure_worker(coordinator_url, folder)
    # a task runs with one torch thread per slot; keep BLAS from oversubscribing the cores
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    node = (name or f"mergenet-{os.getpid()}@%h").replace("%h", socket.gethostname())
    print(
        f"mergenet worker {node}: coordinator {coordinator_url}, broker {redacted(url)}, "
        f"pool {chosen}×{concurrency}, cache {folder}",
        flush=True,
    )
    app = make_app(url)
    app.worker_main(celery_argv(chosen, concurrency, node, loglevel))
