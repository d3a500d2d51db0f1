"""One coordinator process: database (migrated on open), artifact store, submission service,
evaluation pool and the loop thread — what ``mergenet coordinator up`` and the tests start.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.config import Settings
from mergenet.coordinator import feed
from mergenet.coordinator import models as m
from mergenet.coordinator.artifacts import ArtifactStore
from mergenet.coordinator.chain import ChainHooks
from mergenet.coordinator.decision_rows import DecisionRows
from mergenet.coordinator.epochs import EpochPublisher
from mergenet.coordinator.inputs import resolve_inputs
from mergenet.coordinator.loop import EvolutionLoop
from mergenet.coordinator.network import signing_domain
from mergenet.coordinator.row_epochs import current_row_epoch, rotate
from mergenet.coordinator.settings import CoordinatorSettings, LoopSettings
from mergenet.coordinator.submissions import SubmissionLimits, SubmissionService
from mergenet.db import make_engine, make_session_factory, transaction
from mergenet.deltas.models import ModelSource
from mergenet.deltas.safe_json import restore_recursion_limit
from mergenet.migrate import upgrade
from mergenet.protocol.evaluation import EvaluationPool, WorkerEnv
from mergenet.workers.local_pool import ProcessEvaluationPool

log = logging.getLogger("mergenet.coordinator")


def ensure_base_version(
    factory: sessionmaker[Session], store: ArtifactStore, base_dir: Path
) -> m.Version:
    """Register the base model as version 0 (once): copy it into the store, then the row."""
    with factory() as s:
        first = s.scalar(select(m.Version).order_by(m.Version.id).limit(1))
        if first is not None:
            return first

    staging = store.staging_dir()
    for f in base_dir.iterdir():
        if f.is_file() and not f.name.endswith((".bin", ".pt", ".pth", ".pkl")):
            shutil.copy2(f, staging / f.name)
    version_hash = ModelSource(staging).sha256()
    store.put_version_dir(staging, version_hash)
    with transaction(factory) as s:
        v = m.Version(
            hash=version_hash,
            parent_hash=None,
            weights_path=store.relative(store.version_dir(version_hash)),
            selection_seed=secrets.randbits(62),
        )
        s.add(v)
    return v


class Coordinator:
    """Owns every long-lived part; ``open()`` then ``start_loop()``, ``close()`` at the end."""

    def __init__(
        self,
        settings: Settings,
        cs: CoordinatorSettings | None = None,
        *,
        pool: EvaluationPool | None = None,
        pool_factory: Callable[[Coordinator], EvaluationPool] | None = None,
        limits: SubmissionLimits | None = None,
        config: LoopSettings | None = None,
    ):
        """``pool`` is a ready pool; ``pool_factory`` builds one once the inputs are known
        (the Celery pool needs :meth:`worker_env`); neither: the in-process pool."""
        self.settings = settings
        self.cs = cs or CoordinatorSettings()
        self._pool = pool
        self._pool_factory = pool_factory
        self._limits = limits
        self._config = config
        self.engine: Engine | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.chain: ChainHooks | None = None
        self.epochs: EpochPublisher | None = None
        self._epoch_thread: threading.Thread | None = None
        self._rows_thread: threading.Thread | None = None

    def open(self) -> Coordinator:
        restore_recursion_limit()  # py_ecc (eth-account, web3) raised it to 100,000
        self.inputs = resolve_inputs(self.settings, self.cs)  # unusable: one line, nothing written
        data_dir = self.settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(self.settings.resolved_database_url)
        upgrade(self.engine)
        self.factory = make_session_factory(self.engine)
        self.store = ArtifactStore(data_dir / "artifacts")
        self.store.sweep_incoming()
        ensure_base_version(self.factory, self.store, self.inputs.base_dir)
        hooks: ChainHooks | None = None
        if self.cs.chain:
            self.chain = hooks = ChainHooks(self.settings, margin=self.cs.loop.margin)
        distributor = hooks.contracts.distributor.address if hooks is not None else None
        self.domain = signing_domain(self.settings, distributor)
        self.submissions = SubmissionService(self.factory, self.store, self.domain, self._limits)
        self.decision_rows = self._decision_rows()
        if self._pool is not None:
            self.pool = self._pool
        elif self._pool_factory is not None:
            self.pool = self._pool_factory(self)
        else:
            self.pool = ProcessEvaluationPool(self.worker_env(), workers=self.cs.workers)
        config = self._config or self.cs.loop
        rows = feed.rows_for(config.feed_rows, self.decision_rows.source, self.inputs.row_sets)
        config = config.model_copy(update={"feed_rows": rows})
        self.loop = EvolutionLoop(
            self.factory, self.store, self.pool, config, hooks, decision_rows=self.decision_rows
        )
        if self.chain is not None:
            self.loop.on_accept = self.chain.record
            self.epochs = EpochPublisher(
                self.factory, self.chain.contracts, self.chain.owner, self.cs.epoch_seconds
            )
            if self.epochs.bonds is not None and self.epochs.bonds.amount > 0:
                self.submissions.bonds = self.epochs.bonds  # 402 without a deposit on chain
            self._commit_open_epoch()
        return self

    def _commit_open_epoch(self) -> None:
        """Put the open row epoch's commitment on chain before the loop scores any row, so
        the secret is fixed before it is used (best effort: a chain that is down gets it at the
        next publishing round, and ``mergenet audit`` warns when a commitment came late)."""
        assert self.epochs is not None
        if self.epochs.contracts.seeds is None:
            return
        try:
            self.epochs.sync_seeds()
        except Exception as exc:
            log.warning("row epoch commitment not sent yet, will retry: %s", exc)

    def _decision_rows(self) -> DecisionRows:
        """The decision-row source for the dev rows (generator or private pool), and the
        open row epoch (opened here on first start, so the loop never races to open it)."""
        config = self._config or self.cs.loop
        rows = DecisionRows.from_file(
            Path(self.inputs.row_sets[config.rows]),
            source=self.cs.rows_source,
            per_task=self.cs.fresh_rows_per_task,
            pool_per_task=config.sample_n,
        )
        with transaction(self.factory) as s:
            epoch = current_row_epoch(s)
            log.info(
                "decision rows: %s; row epoch %d open (commitment %s)",
                rows.describe(),
                epoch.number,
                epoch.commitment,
            )
        return rows

    def worker_env(self, coordinator_url: str | None = None) -> WorkerEnv:
        """What evaluation workers are told: the store folder and the row files other than
        the decision set (shared disk, the in-process pool: the feed's held-out), or with
        ``coordinator_url`` where to fetch artifacts over HTTP (workers on other machines).
        Decision rows are never named here: they travel inside each task."""
        if coordinator_url is None:
            decision = (self._config or self.cs.loop).rows
            return WorkerEnv(
                store_root=str(self.store.root),
                row_sets={k: str(v) for k, v in self.inputs.row_sets.items() if k != decision},
            )
        return WorkerEnv(coordinator_url=coordinator_url.rstrip("/"))

    def start_loop(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.loop.run, args=(self._stop,), name="mergenet-loop", daemon=True
        )
        self._thread.start()
        if self.epochs is not None and self.cs.epoch_seconds > 0:
            self._epoch_thread = threading.Thread(
                target=self.epochs.run, args=(self._stop,), name="mergenet-epochs", daemon=True
            )
            self._epoch_thread.start()
        if self.chain is None and self.cs.row_epoch_seconds > 0:
            self._rows_thread = threading.Thread(
                target=self._rotate_rows, args=(self._stop,), name="mergenet-rows", daemon=True
            )
            self._rows_thread.start()

    def _rotate_rows(self, stop: threading.Event) -> None:
        """Without a chain: reveal the row epoch's secret and open the next every
        ``row_epoch_seconds`` (with one, :mod:`mergenet.coordinator.epochs` rotates)."""
        while not stop.wait(self.cs.row_epoch_seconds):
            try:
                with transaction(self.factory) as s:
                    rotate(s)
            except Exception:  # the database may be down; the next period tries again
                log.exception("row epoch rotation failed")

    def close(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._epoch_thread, self._rows_thread):
            if thread is not None:
                thread.join(timeout=30)
        if getattr(self, "pool", None) is not None:
            self.pool.close()
        if self.engine is not None:
            self.engine.dispose()
