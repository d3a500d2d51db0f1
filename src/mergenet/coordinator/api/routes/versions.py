"""``/api/versions``: the accepted core versions, their weights and recipes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from mergenet.coordinator import queries
from mergenet.coordinator.api import schemas
from mergenet.coordinator.api.deps import ArchivesDep, SessionDep
from mergenet.coordinator.api.errors import body, documented
from mergenet.errors import NotFound
from mergenet.merge_strategies.recipe import Recipe

router = APIRouter(prefix="/api/versions", tags=["versions"])


@router.get(
    "",
    summary="Every accepted version, oldest first",
    response_model=list[schemas.Version],
)
def list_versions(session: SessionDep) -> Any:
    return queries.versions(session)


@router.get(
    "/current",
    summary="The current core version",
    response_model=schemas.Version,
    responses=documented(NotFound),
)
def current(session: SessionDep) -> Any:
    return queries.current(session)


@router.get(
    "/{version_hash}/weights",
    summary="A version's HF folder as .tar.gz ('current' for the newest)",
    response_class=FileResponse,
    responses=documented(
        NotFound, ok=body("the HF folder, gzipped tar", "application/gzip", binary=True)
    ),
)
def weights(session: SessionDep, archives: ArchivesDep, version_hash: str) -> FileResponse:
    v = queries.version(session, version_hash)
    name = v.hash[:16]
    return FileResponse(
        archives.path(v.hash, v.weights_path),
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="mergenet-{name}.tar.gz"',
            "X-Mergenet-Version": v.hash,
        },
    )


@router.get(
    "/{version_hash}/recipe",
    summary="A version's recipe (JSON)",
    response_model=Recipe,
    response_model_exclude_none=True,
    responses=documented(NotFound),
)
def recipe(session: SessionDep, version_hash: str) -> Any:
    return queries.recipe(session, version_hash)


@router.get(
    "/{version_hash}/recipe.yaml",
    summary="A version's recipe as mergekit YAML",
    response_class=Response,
    responses=documented(NotFound, ok=body("mergekit configuration", "application/yaml")),
)
def recipe_yaml(session: SessionDep, version_hash: str) -> Response:
    return Response(queries.mergekit_yaml(session, version_hash), media_type="application/yaml")
