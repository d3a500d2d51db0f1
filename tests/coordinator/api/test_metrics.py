"""``/metrics`` keeps its metric names and labels (prometheus_client, a registry per app)."""

from __future__ import annotations

from typing import Any

from ...web.history import STRATEGIES, Recorder


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_names_labels_and_values(coordinator: Any, client: Any) -> None:
    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app

    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    fresh = _samples(r.text)
    assert fresh[("mergenet_contributions_total", (("status", "received"),))] == 0
    assert fresh[("mergenet_versions_total", ())] == 1

    rec = Recorder(coordinator.factory)
    shas = rec.contributions(["0x" + "55" * 20], per_address=3)
    rec.contribution_score(shas[0])
    rec.selection(STRATEGIES[0], shas, 0.004)
    rec.accept(STRATEGIES[1], shas, 0.02)
    text = client.get("/metrics").text
    got = _samples(text)
    assert got[("mergenet_contributions_total", (("status", "scored"),))] == 3
    purposes = {
        p: got[("mergenet_evaluations_total", (("purpose", p),))]
        for p in ("selection", "confirmation", "contribution")
    }
    assert purposes == {"selection": 2, "confirmation": 1, "contribution": 1}
    assert got[("mergenet_versions_total", ())] == 2
    assert abs(got[("mergenet_current_version_gain", ())] - 0.018) < 1e-9
    weights = {k[1][0][1]: v for k, v in got.items() if k[0] == "mergenet_strategy_weight"}
    assert set(weights) == set(STRATEGIES) and abs(sum(weights.values()) - 1) < 1e-9
    assert got[("mergenet_evaluations_in_flight", ())] == 0
    for name, kind in [
        ("mergenet_contributions_total", "gauge"),
        ("mergenet_evaluations_total", "counter"),
        ("mergenet_versions_total", "counter"),
        ("mergenet_strategy_weight", "gauge"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text
    # the end-to-end tests grep these lines
    assert "mergenet_versions_total 2" in text and "evaluations_in_flight 0" in text

    # a second app in the same process has its own registry (no duplicate-metric error)
    assert _samples(TestClient(create_app(coordinator)).get("/metrics").text) == got
