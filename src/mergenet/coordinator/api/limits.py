"""A cap on the upload's request body, enforced before anything parses or spools it.

Starlette's multipart parser writes a file part to a temporary file as it arrives, before any
route code runs; without a cap, a 400 MiB body with a fake signature cost 406 MiB of temp
disk before its 413 (issue 19). This ASGI middleware sits in front of ``POST
/api/contributions`` and answers 413 with the limit in ``detail``:

* at once, without reading the body, when ``Content-Length`` declares more than the cap;
* as soon as the bytes received pass the cap (a chunked body, or a lying ``Content-Length``),
  so the parser has spooled at most the cap.

The cap is the submissions service's file cap (the parent's weights plus 1 MiB) plus
:data:`FORM_ALLOWANCE` for ``adapter_config.json`` (capped at 1 MiB by the service), the form
fields and the multipart framing. It is read per request, since it follows the current
version.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mergenet.coordinator.api.errors import STATUS, problem
from mergenet.errors import TooLarge

FORM_ALLOWANCE = 2 << 20
"""Bytes allowed beyond the file cap: adapter config (≤ 1 MiB), fields, multipart framing."""


def _declared(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _message(cap: int, size: int | None = None) -> str:
    what = f"the request body ({size} bytes)" if size is not None else "the request body"
    return (
        f"{what} is over the {cap}-byte limit for uploads to this coordinator: "
        "a delta is about the size of the model it was made on"
    )


class UploadBodyLimit:
    """ASGI middleware: caps the body of ``method path`` at ``cap()`` bytes (see module)."""

    def __init__(self, app: ASGIApp, *, path: str, method: str, cap: Callable[[], int]):
        self.app = app
        self.path = path
        self.method = method
        self.cap = cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != self.method
            or scope["path"].rstrip("/") != self.path
        ):
            await self.app(scope, receive, send)
            return
        cap = await run_in_threadpool(self.cap)
        declared = _declared(scope)
        if declared is not None and declared > cap:
            await problem(STATUS[TooLarge], _message(cap, declared))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    # FastAPI re-raises an HTTPException met while reading the body, and its
                    # handler answers {"detail": ...}; any other error would become a 400.
                    raise HTTPException(STATUS[TooLarge], _message(cap))
            return message

        await self.app(scope, counted, send)
