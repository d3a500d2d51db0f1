"""``TrustedPool``: untrusted Celery workers behind authentication and independent checks.

Evaluation workers may lie (DESIGN.md, "Who is trusted"; issue 16: a fake worker made a
no-op LoRA score S 0.873, get merged and earn 255 tokens). This pool wraps the
``CeleryEvaluationPool`` and the coordinator's own ``ProcessEvaluationPool`` (trusted: it
runs the coordinator's code on the coordinator's machine) and holds these invariants:

* an outcome is recorded under the key the coordinator dispatched; a result reporting
  another key is dropped (``counters["key_mismatch"]``) and the task re-run on the trusted pool;
* only authenticated results are read: each must carry a valid HMAC of (dispatched key,
  result) under its worker's operator-issued secret (:mod:`mergenet.protocol.worker_auth`).
  Unsigned, badly signed or malformed results, and any result from a barred worker, are
  refused (``counters["refused"]``) and the task re-run on the trusted pool, as is a task
  a worker reports failed (``counters["worker_failed"]``): a worker cannot fail honest work;
* a result that can move a payment or a version — a contribution's scoring (its S admits it
  to the merge pool), a confirmation (the last gate before a version) and an attribution
  evaluation (its G prices a contributor's marginal improvement, :mod:`.attribution`) — is
  never used as the worker sent it: the same task (same recipe, same seeded rows) runs on the
  trusted pool and the trusted outcome is what the loop records. If the worker's numbers
  disagree beyond numerical noise (:func:`disagreement`), the worker is barred: its later
  results are refused, a warning is logged and ``counters["barred"]`` counts it.
  Selections (which only decide what gets a confirmation) are spot-checked with probability
  ``spot_check``.

Cost: one trusted evaluation per contribution scored, per confirmation and per attribution
evaluation, so each contribution costs 1 extra evaluation and each accepted version 1 + (1 + k)
extra (its confirmation, and its attribution for k credited contributions),
plus ``spot_check`` × selections. Celery workers still carry the selections, the bulk of the
loop's work (many candidates per version, one confirmation each).

The barred set lives in this process's memory (a restart forgets it; the worker's
credential should then be revoked by changing the master key).
"""

from __future__ import annotations

import logging
import math
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mergenet.coordinator.acceptance import parse_key
from mergenet.coordinator.status import Purpose
from mergenet.errors import Unauthorized
from mergenet.protocol.evaluation import EvalOutcome, EvalTask, EvaluationPool
from mergenet.protocol.worker_auth import Keyring
from mergenet.workers.celery_app import make_app
from mergenet.workers.celery_pool import CeleryEvaluationPool, Received, WorkerEnvSource
from mergenet.workers.local_pool import ProcessEvaluationPool

log = logging.getLogger("mergenet.coordinator.trust")

LOSS_RTOL = 1e-3
"""Relative tolerance on ppl, answer loss and ‖δ‖: the same recipe on the same seeded rows
differs across CPUs/thread counts by float32 rounding (~1e-6 relative); 1e-3 is far above
that and far below the loop's margins, so S agrees to ~1e-3 between honest workers."""
EXACT = ("n_rows", "n_loss_rows", "acc_letter", "acc_choice", "correct")
"""Compared exactly: counts and accuracies over the same rows are fractions of integers (and
the per-item ``correct`` flags the sequential confirmation pairs, :mod:`.sequential`)."""
CHECKED = (Purpose.CONTRIBUTION, Purpose.CONFIRMATION, Purpose.ATTRIBUTION)


def _plain(value: Any) -> Any:
    """Sequences as lists: per-item flags arrive as a JSON list from a Celery worker and as a
    tuple from the in-process pool; ``[True] != (True,)`` would bar every honest worker."""
    return list(value) if isinstance(value, (list, tuple)) else value


def _results_differ(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str | None:
    if a is None or b is None:
        return None if a is b else "one side has no result"
    ta, tb = a.get("tasks", {}), b.get("tasks", {})
    if set(ta) != set(tb):
        return f"tasks {sorted(ta)} against {sorted(tb)}"
    for name, x in ta.items():
        y = tb[name]
        for f in EXACT:
            if _plain(x.get(f)) != _plain(y.get(f)):
                return f"{name}.{f} {x.get(f)} against {y.get(f)}"
        for f in ("ppl", "answer_loss"):
            if not math.isclose(x.get(f, math.nan), y.get(f, math.nan), rel_tol=LOSS_RTOL):
                return f"{name}.{f} {x.get(f)} against {y.get(f)}"
        lx, ly = x.get("item_loss") or [], y.get("item_loss") or []
        if len(lx) != len(ly) or any(
            not math.isclose(u, v, rel_tol=LOSS_RTOL, abs_tol=1e-5)
            for u, v in zip(lx, ly, strict=False)
        ):
            return f"{name}.item_loss differs"
    return None


def disagreement(claimed: EvalOutcome, trusted: EvalOutcome) -> str | None:
    """Why the worker's outcome is not the trusted one within noise, or None if it is."""
    if claimed.error is not None or trusted.error is not None:
        return None  # a failure is not a number; the trusted outcome is used either way
    if not math.isclose(
        claimed.relative_distance, trusted.relative_distance, rel_tol=LOSS_RTOL, abs_tol=1e-9
    ):
        return f"relative distance {claimed.relative_distance} against {trusted.relative_distance}"
    why = _results_differ(claimed.result, trusted.result)
    if why is None:
        why = _results_differ(claimed.parent_result, trusted.parent_result)
        return None if why is None else f"parent {why}"
    return f"candidate {why}"


class TrustedPool:
    """An :class:`EvaluationPool` over untrusted workers (see the module docstring)."""

    def __init__(
        self,
        untrusted: CeleryEvaluationPool,
        trusted: EvaluationPool,
        keyring: Keyring | None,
        *,
        spot_check: float = 0.0,
        draw: Callable[[], float] = secrets.SystemRandom().random,
    ):
        self.untrusted, self.trusted, self.keyring = untrusted, trusted, keyring
        self.spot_check, self._draw = spot_check, draw
        self.counters: Counter[str] = Counter()
        self.barred: dict[str, str] = {}
        """Worker id → why it was barred."""
        self._checking: dict[str, tuple[str, EvalOutcome]] = {}
        self._on_trusted: set[str] = set()
        if keyring is None:
            log.warning("no worker master key: every Celery result is refused and re-run here")

    @property
    def capacity(self) -> int:
        return self.untrusted.capacity

    def submit(self, task: EvalTask) -> None:
        self.untrusted.submit(task)

    def in_flight(self) -> int:
        return self.untrusted.in_flight() + len(self._on_trusted)

    def poll(self, timeout: float) -> list[EvalOutcome]:
        out = [o for r in self.untrusted.poll_received(timeout) if (o := self._receive(r))]
        for o in self.trusted.poll(0.0):
            out.append(self._settle(o))
        return out

    def close(self) -> None:
        self.untrusted.close()
        self.trusted.close()

    def _receive(self, r: Received) -> EvalOutcome | None:
        key = r.task.key
        if r.failure is not None:  # a worker could "fail" honest work: the trusted pool decides
            self._rerun(r.task, "worker_failed", r.failure)
            return None
        try:
            if self.keyring is None:
                raise Unauthorized("no worker master key configured")
            signed = self.keyring.verify(r.payload, key)
            if signed.worker in self.barred:
                raise Unauthorized(f"worker {signed.worker!r} is barred")
            outcome = EvalOutcome.from_json(signed.outcome)
        except (Unauthorized, TypeError) as exc:
            self._rerun(r.task, "refused", str(exc))
            return None
        if outcome.key != key:
            why = f"{signed.worker!r} answered key {outcome.key!r} for {key!r}"
            self._rerun(r.task, "key_mismatch", why)
            return None
        if self._must_check(key):
            self._checking[key] = (signed.worker, outcome)
            self.counters["checks"] += 1
            self._rerun(r.task, None, None)
            return None
        return outcome

    def _must_check(self, key: str) -> bool:
        purpose = parse_key(key)[1]
        return purpose in CHECKED or self._draw() < self.spot_check

    def _rerun(self, task: EvalTask, counter: str | None, why: str | None) -> None:
        if counter is not None:
            self.counters[counter] += 1
            log.warning(
                "worker result for %s %s: %s; re-run on the trusted pool", task.key, counter, why
            )
        if task.key not in self._on_trusted:
            self._on_trusted.add(task.key)
            self.trusted.submit(task)

    def _settle(self, trusted: EvalOutcome) -> EvalOutcome:
        key = trusted.key
        self._on_trusted.discard(key)
        if key in self._checking:
            worker, claimed = self._checking.pop(key)
            why = disagreement(claimed, trusted)
            if why is None:
                self.counters["agreed"] += 1
            else:
                self.bar(worker, f"{key}: {why}")
        return trusted

    def bar(self, worker: str, why: str) -> None:
        """Refuse every later result of ``worker`` (logged, counted)."""
        if worker not in self.barred:
            self.barred[worker] = why
            self.counters["barred"] += 1
            log.warning(
                "worker %r barred: its result disagrees with the trusted one (%s)", worker, why
            )


class TrustSettings(BaseSettings):
    """``MERGENET_WORKER_MASTER_KEY`` (or ``…_FILE``): what worker secrets are issued from."""

    model_config = SettingsConfigDict(env_prefix="MERGENET_WORKER_", extra="ignore")

    master_key: SecretStr | None = None
    master_key_file: str | None = None
    spot_check: float = 0.1
    """Share of selection results also run on the trusted pool."""
    trusted_workers: int = 1

    def keyring(self) -> Keyring | None:
        if self.master_key is not None:
            return Keyring(self.master_key.get_secret_value().encode())
        if self.master_key_file is not None:
            with open(self.master_key_file, "rb") as f:
                return Keyring(f.read().strip())
        return None


def trusted_celery_factory(
    coordinator_url: str, redis_url: str, capacity: int = 2, settings: TrustSettings | None = None
) -> Callable[[WorkerEnvSource], TrustedPool]:
    """``mergenet coordinator up --pool celery``'s pool: Celery workers fetching over
    ``coordinator_url``, checked against ``trusted_workers`` local processes."""
    ts = settings or TrustSettings()

    def build(coord: WorkerEnvSource) -> TrustedPool:
        celery = CeleryEvaluationPool(
            coord.worker_env(coordinator_url), app=make_app(redis_url), capacity=capacity
        )
        local = ProcessEvaluationPool(coord.worker_env(), workers=ts.trusted_workers)
        return TrustedPool(celery, local, ts.keyring(), spot_check=ts.spot_check)

    return build
