"""The coordinator's HTTP API (FastAPI; OpenAPI at ``/docs``): thin routes over the services.

``create_app`` only assembles: the routers of :mod:`mergenet.coordinator.api.routes` (one per
resource), the error handlers (:mod:`~mergenet.coordinator.api.errors`: every domain error kind
becomes its status with ``{"detail": "<what to fix>"}``), the upload body cap
(:mod:`~mergenet.coordinator.api.limits`), the metrics registry and the version archive
cache. Every JSON route declares its response model (:mod:`~mergenet.coordinator.api.schemas`),
so ``/openapi.json`` describes every body. No rejection writes anything.
"""

from __future__ import annotations

from fastapi import FastAPI

from mergenet.coordinator.api import errors, metrics
from mergenet.coordinator.api.limits import FORM_ALLOWANCE, UploadBodyLimit
from mergenet.coordinator.api.routes import (
    artifacts,
    contributions,
    contributors,
    epochs,
    live,
    loop,
    page,
    rewards,
    versions,
)
from mergenet.coordinator.api.routes import metrics as metrics_routes
from mergenet.coordinator.runtime import Coordinator
from mergenet.coordinator.serving import VersionArchives

ROUTERS = (
    contributions,
    versions,
    artifacts,
    loop,
    rewards,
    epochs,
    metrics_routes,
    live,
    contributors,
    page,
)


def create_app(coord: Coordinator) -> FastAPI:
    """The API over an opened :class:`Coordinator` (the app does not open or close it)."""
    app = FastAPI(
        title="mergenet coordinator",
        version="1",
        description="Submit fine-tuning deltas; watch the core model improve.",
    )
    app.state.coordinator = coord
    app.state.metrics = metrics.registry_for(coord)
    # content-addressed by version hash, so never stale; outside the store, which only holds
    # what the database references
    app.state.archives = VersionArchives(
        coord.store, coord.settings.data_dir / "cache" / "version-archives"
    )
    errors.install(app)
    app.add_middleware(
        UploadBodyLimit,
        path="/api/contributions",
        method="POST",
        cap=lambda: coord.submissions.upload_cap() + FORM_ALLOWANCE,
    )
    for module in ROUTERS:
        app.include_router(module.router)
    return app
