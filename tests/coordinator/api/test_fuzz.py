"""The API fuzzed from its own schema (issue 19, item 7): schemathesis generates requests for
every operation in ``/openapi.json`` (valid and invalid parameters, bodies, headers) against the
app in process. Every answer must be below 500, conform to the status codes, content types and
bodies the schema declares, every 4xx must carry a ``detail`` message, and no rejected request
may write to the artifact store or record a contribution.

Bounded: :data:`EXAMPLES` valid and as many invalid cases per operation (~20 s). ``/api/events``
is left out (an endless stream; ``tests/web/test_events.py`` covers it over a real socket).
"""

from __future__ import annotations

import contextlib
import shutil
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ...web.history import STRATEGIES, Recorder

EXAMPLES = 25


def _has_message(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is JSON with a non-empty ``detail``."""
    if 400 <= response.status_code < 500:
        detail = response.json().get("detail")
        assert detail, f"{response.status_code} without a message: {response.text[:200]}"
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    _has_message,
]


def _fuzzer(op: Any, mode: GenerationMode, calls: dict[str, Counter[int]]) -> Any:
    """A Hypothesis test over ``op``'s cases in ``mode`` that counts the calls it made."""
    label = f"{op.method.upper()} {op.path}"

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(checks=CHECKS)
        calls.setdefault(label, Counter())[response.status_code] += 1

    return fuzz


def _current_hash(coordinator: Any) -> str:
    from mergenet.coordinator import queries

    with coordinator.factory() as s:
        return str(queries.current(s)["hash"])


def test_api_from_its_schema(coordinator: Any) -> None:
    from sqlalchemy import func, select

    from mergenet.coordinator import models as m
    from mergenet.coordinator.app import create_app

    rec = Recorder(coordinator.factory)  # bodies with rows in them, checked against the schema
    shas = rec.contributions(["0x" + "66" * 20])
    rec.selection(STRATEGIES[0], shas, 0.004)
    base = coordinator.store.version_dir(_current_hash(coordinator))
    version = rec.accept(STRATEGIES[1], shas, 0.02)
    shutil.copytree(base, coordinator.store.version_dir(version))  # a version has weights
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(coordinator))
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [op for op in operations if op.path != "/api/events"]
    assert len(operations) >= 18
    store_before = coordinator.store.snapshot()
    calls: dict[str, Counter[int]] = {}

    for op in operations:
        _fuzzer(op, GenerationMode.POSITIVE, calls)()
        # no invalid case exists for an operation whose inputs are all free strings
        with contextlib.suppress(Unsatisfiable):
            _fuzzer(op, GenerationMode.NEGATIVE, calls)()
    for label, statuses in sorted(calls.items()):
        print(f"{label:48} {dict(sorted(statuses.items()))}")
    print(sum(sum(c.values()) for c in calls.values()), "cases, 0 5xx")
    assert set(calls) == {f"{op.method.upper()} {op.path}" for op in operations}
    assert coordinator.store.snapshot() == store_before
    assert not any((coordinator.store.root / "incoming").iterdir())
    with coordinator.factory() as s:
        assert s.scalar(select(func.count()).select_from(m.Contribution)) == len(shas)
