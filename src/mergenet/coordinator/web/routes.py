"""The live page's routes: ``/``, its static files, plotly.js from the installed wheel, the
page's JSON reads and the ``/api/events`` stream. Thin routes over ``leaderboard`` and
``events``; included in the coordinator app with one ``include_router`` line.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from mergenet.coordinator import leaderboard
from mergenet.coordinator.runtime import Coordinator
from mergenet.coordinator.web import events

STATIC = Path(__file__).parent
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}


def plotly_js() -> Path:
    """plotly.js as shipped inside the ``plotly`` wheel: installed by pip, never vendored, and
    served from here so the page works with no internet."""
    path = Path(str(resources.files("plotly"))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise HTTPException(500, "plotly.min.js is missing: pip install plotly")
    return path


def web_router(coord: Coordinator) -> APIRouter:
    router = APIRouter()

    def contracts() -> Any:
        return coord.chain.contracts if getattr(coord, "chain", None) is not None else None

    @router.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @router.get("/web/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(
            plotly_js(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @router.get("/web/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        if name not in PAGE_FILES:
            raise HTTPException(404, f"no file {name}")
        return FileResponse(STATIC / name, media_type=PAGE_FILES[name])

    @router.get("/api/live", summary="Everything the live page draws, plus the stream cursor")
    def live() -> dict[str, Any]:
        with coord.factory() as s:
            points = leaderboard.recent_points(s)
            versions = leaderboard.version_marks(s, 0)
        # the cursor is what was sent, not a separate max(id) read: under READ COMMITTED a
        # row committed between two reads would otherwise be sent twice or never
        cursor = events.Cursor(
            points[-1]["id"] if points else 0, versions[-1]["id"] if versions else 0
        )
        return {"points": points, "versions": versions, "cursor": cursor.token()}

    @router.get("/api/leaderboard", summary="Contributors: contributions, best score, rewards")
    def board() -> list[dict[str, Any]]:
        with coord.factory() as s:
            return leaderboard.leaderboard(s, contracts())

    @router.get("/api/tasks", summary="Per-task accuracy: current version against the base")
    def tasks() -> dict[str, Any]:
        with coord.factory() as s:
            return leaderboard.task_comparison(s)

    @router.get(
        "/api/events",
        summary="Server-sent events: new evaluations and accepted versions",
        response_class=StreamingResponse,
    )
    async def stream(
        request: Request,
        after: Annotated[str | None, Query(description="'<evaluation id>:<version id>'")] = None,
        interval: Annotated[float, Query(ge=0.2, le=10.0, description="poll seconds")] = 1.0,
    ) -> StreamingResponse:
        cursor = events.Cursor.parse(request.headers.get("last-event-id")) or events.Cursor.parse(
            after
        )
        if cursor is None:
            with coord.factory() as s:
                ids = leaderboard.latest_ids(s)
            cursor = events.Cursor(ids["evaluation"], ids["version"])
        return StreamingResponse(
            events.stream(coord.factory, cursor, interval, request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
