"""``/metrics`` (Prometheus text format) and ``/healthz``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from mergenet.coordinator.api import metrics, schemas
from mergenet.coordinator.api.deps import MetricsDep
from mergenet.coordinator.api.errors import body, documented

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses=documented(ok=body("Prometheus text exposition, format 0.0.4", metrics.CONTENT_TYPE)),
)
def prometheus(registry: MetricsDep) -> Response:
    return Response(metrics.exposition(registry), media_type=metrics.CONTENT_TYPE)


@router.get("/healthz", include_in_schema=False, response_model=schemas.Health)
def health() -> schemas.Health:
    return schemas.Health(status="ok")
