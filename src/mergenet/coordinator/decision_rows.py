"""The rows each scoring decision is made on: fresh, private, recorded, regenerable.

The loop (:meth:`mergenet.coordinator.loop.EvolutionLoop._dispatch`) asks
:meth:`DecisionRows.sample` for every contribution scoring, selection, confirmation and
attribution; the rows travel inside the task (:class:`~mergenet.protocol.evaluation.SampleSpec`
``data``), so no route serves them. Two sources, chosen by :meth:`DecisionRows.from_file`:

* **generator** (chosen automatically when every subject of the dev rows is a world task
  family): :func:`mergenet.ecosystem.fresh_rows.fresh_rows` with the open row epoch's secret
  (:mod:`mergenet.coordinator.row_epochs`), ``label`` = the purpose, ``per_task`` rows
  (default 64, the world's dev size, so scoring costs what it did). The dev file itself only
  names the tasks.
* **private pool** (a coordinator started on its own ``--dev-rows`` file whose subjects are
  not world task families): the file is never served; each decision takes the next
  ``per_task`` rows (the loop's ``sample_n``) of every subject along a permutation keyed by
  a private key kept in ``loop_state`` (``row_pool_key``, never revealed), and the persisted
  cursor ``row_pool_cursor`` retires them. When a subject runs out, positions wrap (used
  rows come back) and a warning says so once per pass: add rows.

``rows_source`` (``MERGENET_COORDINATOR_ROWS_SOURCE``: ``auto``/``generator``/``pool``)
overrides the choice.

Pinning. The rows of one ``(purpose, seed)`` are fixed the first time they are drawn: the
loop_state row ``rows:<purpose>:<seed>`` records ``<epoch>|<rows_label>``. So a version's
selection sample (one seed for all its candidates) is the same rows for every candidate even
across a rotation (paired comparisons stay paired); an attribution's 1 + k evaluations share
rows; and :func:`dispatched` tells the acceptance which epoch and label an outcome scored,
which it stores on the evaluation. A rotation reveals the epoch a version's selection sample
was pinned to, so it also gives the current version a new selection seed
(:func:`mergenet.coordinator.row_epochs.rotate`): later candidates are selected on rows of the
new epoch, against rivals of the same seed only. Confirmation is always drawn fresh from the
open epoch, so a candidate tuned to any revealed sample still has to pass an unseen one.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.coordinator.row_epochs import current_row_epoch, epoch_secret
from mergenet.ecosystem.fresh_rows import (
    POOL_PREFIX,
    fresh_rows,
    generator_label,
    pool_label,
    pool_rows,
    regenerate,
)
from mergenet.ecosystem.tasks import TASKS
from mergenet.protocol.evaluation import SampleSpec
from mergenet.protocol.jsonl import read_jsonl

log = logging.getLogger("mergenet.coordinator.decision_rows")

SOURCES = ("auto", "generator", "pool")
GENERATOR, POOL = "generator", "pool"
POOL_KEY, POOL_CURSOR = "row_pool_key", "row_pool_cursor"
DEFAULT_PER_TASK = 64


def pin_key(purpose: str, seed: int) -> str:
    return f"rows:{purpose}:{seed}"


def dispatched(session: Session, purpose: str, seed: int) -> tuple[int | None, str | None]:
    """``(row_epoch, rows_label)`` the rows of ``(purpose, seed)`` were drawn with, or
    ``(None, None)`` for a task that carried a named row set (the feed's held-out)."""
    row = session.get(m.LoopState, pin_key(purpose, seed))
    if row is None:
        return None, None
    epoch, _, label = row.value.partition("|")
    return int(epoch), label


@lru_cache(maxsize=64)
def _generated(secret: bytes, label: str, seed: int) -> tuple[dict[str, str], ...]:
    """Generated rows, cached: a version's selection sample is drawn once, not per
    candidate (66 ms per draw for 10 tasks x 64 rows)."""
    return tuple(regenerate(secret, label, seed))


class DecisionRows:
    """Where decision rows come from (generator or private pool) and how they are pinned."""

    def __init__(
        self,
        source: str,
        *,
        tasks: Sequence[str] = (),
        pool: Sequence[Mapping[str, Any]] = (),
        per_task: int = DEFAULT_PER_TASK,
    ):
        if source not in (GENERATOR, POOL):
            raise ValueError(f"rows source must be {GENERATOR!r} or {POOL!r}, not {source!r}")
        if per_task < 1:
            raise ValueError(f"per_task must be positive, got {per_task}")
        self.source = source
        self.tasks = tuple(sorted(set(tasks)))
        self.pool = [dict(r) for r in pool]
        self.per_task = per_task
        if source == GENERATOR:
            fresh_rows(b"check", self.tasks, label="check", seed=0, per_task=per_task)
        elif not self.pool:
            raise ValueError("a private row pool needs rows")
        self._warned_pass = -1

    @classmethod
    def world(
        cls, tasks: Sequence[str] | None = None, per_task: int = DEFAULT_PER_TASK
    ) -> DecisionRows:
        """The generator over ``tasks`` (default: the default world's tasks)."""
        if tasks is None:
            from mergenet.ecosystem.spec import WorldSpec

            tasks = WorldSpec().tasks
        return cls(GENERATOR, tasks=tasks, per_task=per_task)

    @classmethod
    def from_file(
        cls, path: Path, *, source: str = "auto", per_task: int, pool_per_task: int
    ) -> DecisionRows:
        """The source for a dev row file: generator when every subject is a world task
        family (``auto``), else the private pool of the file's rows."""
        if source not in SOURCES:
            raise ValueError(f"rows_source must be one of {SOURCES}, not {source!r}")
        rows = read_jsonl(path)
        subjects = {str(r.get("subject", "")) for r in rows}
        if source == "auto":
            source = GENERATOR if subjects and subjects <= set(TASKS) else POOL
        if source == GENERATOR:
            return cls(GENERATOR, tasks=sorted(subjects), per_task=per_task)
        return cls(POOL, pool=rows, per_task=pool_per_task)

    def describe(self) -> str:
        if self.source == GENERATOR:
            return f"fresh generated rows ({len(self.tasks)} tasks x {self.per_task})"
        return f"private row pool ({len(self.pool)} rows, {self.per_task} per subject each)"

    # -- drawing --------------------------------------------------------------------------
    def sample(self, session: Session, purpose: str, seed: int, n: int) -> SampleSpec:
        """The sample of one decision: pinned rows of ``(purpose, seed)``, drawn now if new."""
        epoch, label = dispatched(session, purpose, seed)
        if epoch is None or label is None:
            epoch = current_row_epoch(session).number
            label = self._new_label(session, purpose)
            session.add(m.LoopState(key=pin_key(purpose, seed), value=f"{epoch}|{label}"))
            session.flush()
        data = self.regenerate(session, epoch, label, seed)
        return SampleSpec(rows=label, n=n, seed=seed, data=tuple(data))

    def _new_label(self, session: Session, purpose: str) -> str:
        if self.source == GENERATOR:
            return generator_label(purpose, self.per_task, self.tasks)
        cursor = session.get(m.LoopState, POOL_CURSOR)
        if cursor is None:
            cursor = m.LoopState(key=POOL_CURSOR, value="0")
            session.add(cursor)
        start = int(cursor.value)
        cursor.value = str(start + self.per_task)
        return pool_label(start, self.per_task)

    def regenerate(
        self, session: Session, epoch: int, rows_label: str, seed: int
    ) -> tuple[dict[str, Any], ...]:
        """The rows an evaluation recorded as ``(row_epoch, rows_label, sample_seed)``."""
        if rows_label.startswith(POOL_PREFIX + ":"):
            _, start, per_task = rows_label.split(":")
            rows, wrapped = pool_rows(
                self._pool_key(session), self.pool, start=int(start), per_task=int(per_task)
            )
            if wrapped:
                self._warn_exhausted(int(start))
            return tuple(rows)
        return _generated(epoch_secret(session, epoch), rows_label, seed)

    def _pool_key(self, session: Session) -> bytes:
        row = session.get(m.LoopState, POOL_KEY)
        if row is None:
            row = m.LoopState(key=POOL_KEY, value=secrets.token_hex(32))
            session.add(row)
            session.flush()
        return bytes.fromhex(row.value)

    def _warn_exhausted(self, start: int) -> None:
        smallest = min(
            sum(1 for r in self.pool if r.get("subject") == s)
            for s in {r.get("subject") for r in self.pool}
        )
        passes = start // max(1, smallest)
        if passes != self._warned_pass:
            self._warned_pass = passes
            log.warning(
                "private row pool exhausted: its smallest subject has %d rows and %d have "
                "been used (cursor %d), so decisions now score rows already used (and "
                "possibly published); start the coordinator with more --dev-rows",
                smallest,
                start,
                start,
            )
