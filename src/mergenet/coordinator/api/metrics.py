"""``/metrics`` through ``prometheus_client``: one collector that reads the database at scrape
time, in a registry per app (never the process-global one, so a process, e.g. the tests, can
hold several apps).

Metric names and labels are the public contract (dashboards and the end-to-end tests read
them); they are the ones the hand-written exposition had:

=================================  =======  ==========================================
``mergenet_contributions_total``   gauge    contributions by ``status``
``mergenet_evaluations_total``     counter  finished evaluations by ``purpose``
``mergenet_versions_total``        counter  core versions, the base included
``mergenet_current_version_gain``  gauge    S − S₀ of the current version
``mergenet_strategy_weight``       gauge    H(s) by ``strategy``
``mergenet_evaluations_in_flight`` gauge    tasks in the evaluation pool
=================================  =======  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from mergenet.coordinator import queries
from mergenet.coordinator.runtime import Coordinator

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The text format (0.0.4) every Prometheus version scrapes."""


class CoordinatorCollector(Collector):
    """The coordinator's state as metric families, read fresh on every scrape."""

    def __init__(self, coord: Coordinator):
        self.coord = coord

    def collect(self) -> Iterator[Metric]:
        with self.coord.factory() as s:
            c = queries.counts(s)
        contributions = GaugeMetricFamily(
            "mergenet_contributions_total", "Contributions by status.", labels=["status"]
        )
        for status, n in (c.contributions_by_status or {"received": 0}).items():
            contributions.add_metric([status], n)
        yield contributions
        evaluations = CounterMetricFamily(
            "mergenet_evaluations_total", "Finished evaluations by purpose.", labels=["purpose"]
        )
        for purpose, n in c.evaluations_by_purpose.items():
            evaluations.add_metric([purpose], n)
        yield evaluations
        yield CounterMetricFamily(
            "mergenet_versions_total", "Core versions (base included).", value=c.versions
        )
        yield GaugeMetricFamily(
            "mergenet_current_version_gain",
            "S - S_0 of the current version on its confirmation sample.",
            value=c.current_gain,
        )
        weights = GaugeMetricFamily(
            "mergenet_strategy_weight", "H(s), the strategy distribution.", labels=["strategy"]
        )
        for strategy, w in c.strategy_weights.items():
            weights.add_metric([strategy], w)
        yield weights
        yield GaugeMetricFamily(
            "mergenet_evaluations_in_flight",
            "Tasks in the pool.",
            value=self.coord.pool.in_flight(),
        )


def registry_for(coord: Coordinator) -> CollectorRegistry:
    """A fresh registry holding only this coordinator's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CoordinatorCollector(coord))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
