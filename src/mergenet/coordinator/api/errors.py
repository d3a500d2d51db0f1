"""Domain errors → HTTP: the one place that knows which kind of failure is which status code.

Domain code raises the kinds in :mod:`mergenet.errors` and never a status code; this module maps
each kind to its status and answers ``{"detail": "<message>"}`` (the message is the error's own
text, written for the person who caused it). Request validation stays FastAPI's (422 with a
``detail`` list naming each bad field).

:func:`documented` gives a route's ``responses=`` entry for the kinds it may raise, so
``/openapi.json`` lists each error status with the :class:`~.schemas.Problem` body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mergenet.coordinator.api.schemas import Invalid, Problem
from mergenet.errors import (
    Conflict,
    InvalidInput,
    MergenetError,
    NotFound,
    PaymentRequired,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)

log = logging.getLogger("mergenet.coordinator.api")

STATUS: dict[type[MergenetError], int] = {
    UnsupportedMediaType: 415,
    InvalidInput: 422,
    Unauthorized: 401,
    NotFound: 404,
    Conflict: 409,
    PaymentRequired: 402,
    TooLarge: 413,
    RateLimited: 429,
    Unavailable: 503,
}
"""Each failure kind's status code. A bare ``MergenetError`` (no kind) answers 400."""

UNKINDED = 400


def status_for(exc: MergenetError) -> int:
    """The status of ``exc``'s kind (the first kind in its method resolution order)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return UNKINDED


def problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


async def _domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MergenetError)
    status = status_for(exc)
    if status >= 500:
        log.warning("answered %d: %s", status, exc.message)
    response = problem(status, exc.message)
    retry = getattr(exc, "retry_after", None)  # a quota says when to come back (429)
    if isinstance(retry, int) and retry > 0:
        response.headers["Retry-After"] = str(retry)
    return response


async def _database_down(_: Request, exc: Exception) -> JSONResponse:
    """The database refused or dropped the connection (e.g. PostgreSQL restarting): 503, not a
    bare 500. The transaction was rolled back, so nothing of the request was written."""
    log.warning("answered 503: database unavailable (%s)", type(exc).__name__)
    return problem(503, "the coordinator's database is unavailable right now; retry shortly")


def install(app: FastAPI) -> None:
    """Register the handlers on ``app`` (one for every kind, through their common base)."""
    app.add_exception_handler(MergenetError, _domain_error)
    app.add_exception_handler(OperationalError, _database_down)
    app.add_exception_handler(PoolTimeout, _database_down)  # every pooled connection busy


_DESCRIPTIONS = {
    InvalidInput: "malformed or unacceptable input",
    UnsupportedMediaType: "not a format this accepts (a pickle or zip instead of safetensors)",
    Unauthorized: "a signature or nonce does not check out",
    NotFound: "no such resource here",
    Conflict: "clashes with recorded state (a duplicate, a reused nonce)",
    TooLarge: "over a size cap",
    PaymentRequired: "a deposit is required first (the per-upload bond)",
    RateLimited: "quota used up",
    Unavailable: "a service this needs is down or not configured",
}


def documented(
    *kinds: type[MergenetError], ok: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that may raise ``kinds``: status → body (a 422 may also be
    FastAPI's own request validation, hence :class:`Invalid`; every other kind is Problem),
    plus ``ok`` as the 200 of a route whose body is not JSON (see :func:`body`)."""
    out: dict[int | str, dict[str, Any]] = {} if ok is None else {200: ok}
    return out | {
        STATUS[k]: {
            "model": Invalid if k is InvalidInput else Problem,
            "description": _DESCRIPTIONS[k].capitalize(),
        }
        for k in kinds
    }


def body(description: str, *media: str, binary: bool = False) -> dict[str, Any]:
    """A non-JSON 200 for the schema: its description and a string schema per media type."""
    schema = {"type": "string", "format": "binary"} if binary else {"type": "string"}
    return {"description": description, "content": {m: {"schema": schema} for m in media}}
