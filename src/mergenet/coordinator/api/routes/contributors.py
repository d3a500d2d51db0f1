"""``/api/contributors/{address}``: one contributor's submissions, impact, lineage, rewards and
the reason a contribution earned nothing (:mod:`mergenet.coordinator.contributors`); the page
``/contributors/{address}`` (:mod:`.page`) draws it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mergenet.coordinator import contributors
from mergenet.coordinator.api import feed_schemas
from mergenet.coordinator.api.deps import ContractsDep, CoordinatorDep, SessionDep
from mergenet.coordinator.api.errors import documented
from mergenet.errors import InvalidInput, NotFound

router = APIRouter(prefix="/api", tags=["live"])


@router.get(
    "/contributors/{address}",
    summary="A contributor: submissions, scores, impact, merging versions, rewards, reasons",
    response_model=feed_schemas.Contributor,
    responses=documented(InvalidInput, NotFound),
)
def contributor(
    coord: CoordinatorDep, session: SessionDep, contracts: ContractsDep, address: str
) -> Any:
    loop = getattr(coord, "loop", None)
    min_gain = float(getattr(getattr(loop, "config", None), "pool_min_task_gain", 0.02))
    return contributors.contributor(session, address, contracts, min_gain)
