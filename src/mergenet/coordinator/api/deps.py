"""What a route may ask for (``Annotated[..., Depends]``, as in the FastAPI full-stack
template): the coordinator runtime, a database session, the reward contracts, the version
archive cache, the metrics registry.

The app holds its :class:`~mergenet.coordinator.runtime.Coordinator` in ``app.state``
(:func:`mergenet.coordinator.app.create_app` puts it there), so the routes are plain module
functions and one process can serve several apps (the tests do).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session

from mergenet.coordinator.runtime import Coordinator
from mergenet.coordinator.serving import VersionArchives


def get_coordinator(request: Request) -> Coordinator:
    coord: Coordinator = request.app.state.coordinator
    return coord


CoordinatorDep = Annotated[Coordinator, Depends(get_coordinator)]


def get_session(coord: CoordinatorDep) -> Iterator[Session]:
    """One read session per request, closed when the route is done."""
    with coord.factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_contracts(coord: CoordinatorDep) -> Any:
    """The reward contracts when this coordinator pays on chain, else None."""
    chain = getattr(coord, "chain", None)
    return chain.contracts if chain is not None else None


ContractsDep = Annotated[Any, Depends(get_contracts)]


def get_archives(request: Request) -> VersionArchives:
    archives: VersionArchives = request.app.state.archives
    return archives


ArchivesDep = Annotated[VersionArchives, Depends(get_archives)]


def get_metrics(request: Request) -> CollectorRegistry:
    registry: CollectorRegistry = request.app.state.metrics
    return registry


MetricsDep = Annotated[CollectorRegistry, Depends(get_metrics)]
