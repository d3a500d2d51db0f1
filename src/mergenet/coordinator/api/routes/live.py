"""What the live page reads: ``/api/live`` (everything it draws), ``/api/feed`` (the core's
live feed: :mod:`mergenet.coordinator.feed`), ``/api/leaderboard``, ``/api/tasks`` and the
``/api/events`` stream (:mod:`mergenet.coordinator.web.events`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse

from mergenet.coordinator import feed, leaderboard
from mergenet.coordinator.api import feed_schemas, schemas
from mergenet.coordinator.api.deps import ContractsDep, CoordinatorDep, SessionDep
from mergenet.coordinator.api.errors import body, documented
from mergenet.coordinator.web import events

router = APIRouter(prefix="/api", tags=["live"])


@router.get(
    "/live",
    summary="Everything the live page draws, plus the stream cursor",
    response_model=schemas.Live,
)
def live(session: SessionDep) -> Any:
    return events.snapshot(session)


@router.get(
    "/feed",
    summary="The core's score over time: feed points, each version's level, per-task bars",
    response_model=feed_schemas.Feed,
)
def core_feed(session: SessionDep) -> Any:
    return feed.feed(session)


@router.get(
    "/leaderboard",
    summary="Contributors: contributions, best score, rewards",
    response_model=list[schemas.LeaderboardRow],
)
def board(session: SessionDep, contracts: ContractsDep) -> Any:
    return leaderboard.leaderboard(session, contracts)


@router.get(
    "/tasks",
    summary="Per-task accuracy: current version against the base",
    response_model=schemas.TaskComparison,
)
def tasks(session: SessionDep) -> Any:
    return leaderboard.task_comparison(session)


@router.get(
    "/events",
    summary="Server-sent events: new evaluations and accepted versions",
    response_class=EventSourceResponse,
    responses=documented(
        ok=body(
            "event `hello` (the starting cursor), then `evaluations` (a list of score points, "
            "as in /api/live) and `versions` (a list of version marks), each with id "
            "'<evaluation id>:<version id>'",
            "text/event-stream",
        )
    ),
)
async def stream(
    coord: CoordinatorDep,
    after: Annotated[str | None, Query(description="'<evaluation id>:<version id>'")] = None,
    interval: Annotated[
        float, Query(ge=events.MIN_INTERVAL, le=events.MAX_INTERVAL, description="poll seconds")
    ] = 1.0,
    last_event_id: Annotated[
        str | None, Header(description="sent by a reconnecting EventSource: resume after it")
    ] = None,
) -> EventSourceResponse:
    cursor = await events.start(coord.factory, last_event_id, after)
    return EventSourceResponse(
        events.stream(coord.factory, cursor, interval),
        ping=events.HEARTBEAT_SECONDS,
        sep=events.SEP,
        headers={"Cache-Control": "no-cache"},
    )
