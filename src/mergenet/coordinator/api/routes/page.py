"""The live page ``/`` and the contributor page ``/contributors/{address}``, their static files
and plotly.js (not part of the API schema). The contributor page is static HTML: its script
reads the address from the URL and asks ``/api/contributors/{address}``, so nothing the
participant controls is ever written into HTML by the server."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from mergenet.coordinator.web import assets

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(assets.INDEX, media_type="text/html")


@router.get("/contributors/{address}")
def contributor_page(address: str) -> FileResponse:
    return FileResponse(assets.CONTRIBUTOR, media_type="text/html")


@router.get("/web/plotly.min.js")
def plotly() -> FileResponse:
    return FileResponse(
        assets.plotly_js(),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/web/{name}")
def static(name: str) -> FileResponse:
    path, media_type = assets.page_file(name)
    return FileResponse(path, media_type=media_type)
