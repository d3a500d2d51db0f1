"""The coordinator's Petals pool factory, shared by ``mergenet coordinator up --pool petals``
and ``mergenet demo --pool petals`` (one place that wires the swarm pool to a coordinator).

The pool (:class:`mergenet.petals.pool.PetalsEvaluationPool`) reads artifacts from the
coordinator's store, works under ``<data_dir>/petals`` and stops every peer it started when
the coordinator closes it (``Coordinator.close``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.protocol.evaluation import EvaluationPool


def petals_pool_factory(
    peers: int, initial_peers: list[str] | None, capacity: int
) -> Callable[[Coordinator], EvaluationPool]:
    """A ``pool_factory`` for :class:`~mergenet.coordinator.runtime.Coordinator`: the swarm
    pool with ``peers`` server peers per model, joining ``initial_peers`` (None: a bootstrap
    peer of its own on loopback), ``capacity`` evaluations in flight.

    Checks the Petals environment first (``PetalsEnvMissing``: one clear error before anything
    starts)."""
    from mergenet.petals.env import petals_python
    from mergenet.petals.pool import PetalsEvaluationPool

    petals_python()

    def factory(coord: Coordinator) -> EvaluationPool:
        return PetalsEvaluationPool(
            coord.worker_env(),
            coord.settings.data_dir / "petals",
            servers=peers,
            initial_peers=initial_peers,
            capacity=capacity,
        )

    return factory
