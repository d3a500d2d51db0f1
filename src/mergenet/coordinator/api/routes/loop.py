"""``/api/history`` and ``/api/strategies``: what the evolution loop did, and H(s)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mergenet.coordinator import queries
from mergenet.coordinator.api import schemas
from mergenet.coordinator.api.deps import SessionDep

router = APIRouter(prefix="/api", tags=["loop"])


@router.get(
    "/history",
    summary="Score over time, accepted versions, contributions",
    response_model=schemas.History,
)
def history(session: SessionDep) -> Any:
    return queries.history(session)


@router.get("/strategies", summary="H(s) now and over time", response_model=schemas.Strategies)
def strategies(session: SessionDep) -> Any:
    return queries.strategies(session)
