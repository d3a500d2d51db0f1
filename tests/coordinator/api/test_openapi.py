"""The schema describes every response body, and every error kind maps to its status."""

from __future__ import annotations

from typing import Any

import pytest


def test_every_route_in_the_schema_describes_its_response_body(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    described, total = [], []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            total.append(f"{method.upper()} {path}")
            ok = [r for code, r in op["responses"].items() if code.startswith("2")]
            assert len(ok) == 1, (path, method)
            content = ok[0].get("content") or {}
            if content and all(c.get("schema") not in (None, {}) for c in content.values()):
                described.append(f"{method.upper()} {path}")
            for code, r in op["responses"].items():
                if code.startswith(("4", "5")):
                    schema = r["content"]["application/json"]["schema"]
                    name = schema["$ref"].rsplit("/", 1)[1]
                    allowed = {"Invalid", "HTTPValidationError"} if code == "422" else {"Problem"}
                    assert name in allowed, (path, code, name)
    print(f"{len(described)} of {len(total)} operations describe their response body")
    assert described == total
    assert len(total) >= 21  # 19 + the live feed and the contributor page's; others add more
    assert {"GET /api/feed", "GET /api/contributors/{address}"} <= set(total)
    contribution = spec["components"]["schemas"]["ContributionStatus"]
    assert set(contribution["properties"]) >= {"sha256", "status", "score", "reward"}
    post = spec["paths"]["/api/contributions"]["post"]
    assert {"201", "401", "409", "413", "415", "422"} <= set(post["responses"])


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("InvalidInput", 422),
        ("UnsupportedMediaType", 415),
        ("Unauthorized", 401),
        ("NotFound", 404),
        ("Conflict", 409),
        ("TooLarge", 413),
        ("RateLimited", 429),
        ("Unavailable", 503),
        ("MergenetError", 400),
    ],
)
def test_error_kinds_map_to_their_status_with_the_message(kind: str, status: int) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import mergenet.errors as e
    from mergenet.coordinator.api import errors

    class Specific(getattr(e, kind)):  # type: ignore[misc]
        """A package's own subclass of a kind: mapped through the kind, no new handler."""

    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise Specific(f"what to fix ({kind})")

    r = TestClient(app).get("/boom")
    assert (r.status_code, r.json()) == (status, {"detail": f"what to fix ({kind})"})
