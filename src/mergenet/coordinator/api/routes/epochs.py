"""``/api/row-epochs``: row-epoch commitments, revealed secrets and what an auditor re-runs.

Every scoring decision draws its rows from the open row epoch's secret; the epoch commits to
it (sha256) when it opens and reveals it when it closes (:mod:`mergenet.coordinator.row_epochs`).
These routes let anyone check that afterwards (``mergenet audit EPOCH``,
:mod:`mergenet.node.audit`): the list and one epoch never show an open epoch's secret, and an
open epoch's evaluations are refused with 409 (their rows must stay private while they are
still being scored). A revealed epoch's evaluations carry what re-runs them: the recipe, the
rows label and seed (generated rows are regenerated from the secret), and, for a private row
pool, the rows themselves (retired once used, so publishable once their epoch is revealed).
Reads go through :mod:`mergenet.coordinator.epoch_queries`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from mergenet.coordinator import epoch_queries
from mergenet.coordinator.api import epoch_schemas as schemas
from mergenet.coordinator.api.deps import CoordinatorDep, SessionDep
from mergenet.coordinator.api.errors import documented
from mergenet.errors import Conflict, NotFound

router = APIRouter(prefix="/api/row-epochs", tags=["row epochs"])

EpochNumber = Annotated[int, Path(ge=1, le=2**62, description="the row epoch's number")]


@router.get(
    "",
    summary="Every row epoch: commitment, when it opened and was revealed, chain transactions",
    response_model=list[schemas.RowEpoch],
)
def list_row_epochs(session: SessionDep) -> Any:
    return epoch_queries.row_epochs(session)


@router.get(
    "/{number}",
    summary="One row epoch; its secret once revealed (null before)",
    response_model=schemas.RevealedRowEpoch,
    responses=documented(NotFound),
)
def row_epoch(session: SessionDep, number: EpochNumber) -> Any:
    return epoch_queries.row_epoch(session, number)


@router.get(
    "/{number}/evaluations",
    summary="A revealed epoch's evaluations, to re-run: recipe, sample, every recorded number",
    response_model=schemas.EpochEvaluations,
    responses=documented(NotFound, Conflict),
)
def epoch_evaluations(
    coord: CoordinatorDep,
    session: SessionDep,
    number: EpochNumber,
    after: Annotated[int, Query(ge=0, le=2**62, description="evaluation id cursor")] = 0,
    limit: Annotated[int, Query(ge=1, le=epoch_queries.MAX_PAGE)] = epoch_queries.MAX_PAGE,
) -> Any:
    def pool(epoch: int, label: str, seed: int) -> Any:
        return coord.decision_rows.regenerate(session, epoch, label, seed)

    sample = {"n": coord.loop.config.sample_n}
    return epoch_queries.revealed_evaluations(
        session, number, sample, after=after, limit=limit, pool=pool
    )
