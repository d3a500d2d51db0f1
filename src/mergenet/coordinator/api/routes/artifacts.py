"""``/api/deltas``: stored deltas by content hash, for workers (:mod:`mergenet.coordinator.serving`
says what is served and how; no route serves rows)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from mergenet.coordinator import serving
from mergenet.coordinator.api.deps import CoordinatorDep
from mergenet.coordinator.api.errors import body, documented
from mergenet.errors import InvalidInput, NotFound

router = APIRouter(prefix="/api", tags=["artifacts"])


@router.get(
    "/deltas/{sha256}",
    summary="A stored delta by sha256 (safetensors; a LoRA adapter as .tar.gz), for workers",
    response_class=Response,
    responses=documented(
        InvalidInput,
        NotFound,
        ok=body(
            "the delta; X-Mergenet-Delta-Kind says which body it is",
            "application/octet-stream",
            "application/gzip",
            binary=True,
        ),
    ),
)
def delta_file(coord: CoordinatorDep, sha256: str) -> Response:
    d = serving.delta(coord.store, sha256)
    headers = {"X-Mergenet-Sha256": d.sha256, "X-Mergenet-Delta-Kind": d.kind}
    if d.kind == serving.DENSE:
        return FileResponse(d.path, media_type="application/octet-stream", headers=headers)
    return Response(d.body(), media_type="application/gzip", headers=headers)
