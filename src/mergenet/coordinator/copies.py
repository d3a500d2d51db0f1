"""Copies detected in task-vector space: is a new delta mostly a combination of others' deltas?

Every recorded delta's sketch (:mod:`mergenet.deltas.sketch`, a linear per-tensor
count-sketch) is kept in memory here and on disk next to the artifacts
(``<store>/sketches/<sha256>.npz``). :meth:`CopyIndex.check` projects a new delta's sketch,
tensor by tensor, onto the span of the sketches of earlier deltas from *other* addresses (per
tensor, the ``candidates`` most similar by |cosine|) and reports the **explained fraction**

    explained = 1 − Σ_t ‖residual_t‖² / Σ_t ‖s_t‖²

weighted by tensor energy, so a copy with some tensors zeroed (lm_head-zeroed, only the
attention tensors) still counts as a copy, a scaled or negated copy is explained exactly (a
span, not a cosine), an average of two deltas is in the span of the two, and an independent
noise on top of a copy at cosine c leaves ``explained ≈ c²`` (0.95 → 0.90, 0.9 → 0.81).
Chance fit: ``M`` regressors in ``k`` dimensions explain ``M/k`` of a random vector, so the
span is capped per tensor at ``min(candidates, width / 16)`` (12 of 1024 buckets: ≈ 1.2 %).
The contributors it names are those whose fitted part explains the most
(``Σ_t c_t·⟨s_jt, s_t⟩``, which sums to the explained fraction).

Credit stays with the earliest: only deltas recorded before the new one are in the index, and
the same address's own earlier deltas are never in its span (a refined resubmission is not a
copy of someone else).

Measured (``python benchmarks/copy_detection.py``, default world db45132220f1, 8
contributors, k = 1024, 12 candidates; attacks built from each of the 8 deltas in turn and
checked against all 8; "old" = largest exact cosine with one other delta, the rule this
replaced refused at 0.99)::

    delta                                   explained min/mean/max  refused   old
    honest, each vs the other 7             0.042 / 0.405 / 0.622   0/8       0.687
    honest 2nd fine-tune, alice's family    0.948                   1/1       0.972
    honest 2nd fine-tune, grace's family    0.910                   1/1       0.949
    scaled ×0.5, ×3, Sybil half δ/2         1.000                   8/8 each  1.000
    copy + noise at cosine 0.95             0.899 / 0.904 / 0.906   8/8       0.950
    copy + noise at cosine 0.90             0.803 / 0.813 / 0.820   8/8       0.900
    lm_head zeroed                          1.000                   8/8       0.589
    attention tensors only                  1.000                   8/8       0.302
    average of two others                   1.000                   8/8       0.746

``DEFAULT_THRESHOLD`` = 0.7 sits between the highest honest delta of another task family
(0.622: the world's number tasks share an lm_head direction, cosine 0.92 between alice's and
bob's lm_head, which holds 55 % of the energy) and the weakest attack (0.803): false positives
0 of 8 honest deltas, detection 64 of 64 attacks. The limit, measured: a second honest
fine-tune of the *same* task family from the same base (same data and settings, another seed)
explains 0.91–0.95 — more than a copy with noise at cosine 0.95 — and is refused (2 of 2);
in task-vector space it cannot be told from a noisy copy, and it adds little a merge does not
already have. Partial copies (a copied subset of tensors plus one's own work elsewhere) are
refused only when the copied part holds ≥ 70 % of the energy.

Cost: the check is one float32 matrix-vector product per tensor over the stored sketches and
a 12 × 12 solve: 1.8 ms with 8 stored sketches and 11.6 ms with 200 (39 tensors, medians of
20, the shared 2-core AMD EPYC at load ~16; before, k × 12 LAPACK least squares on float64
copies: 1.8 s with 200), so it runs inside the submission lock; sketching the upload (0.18 s
for the world's 2.56M-number delta at that load) runs outside it, as does loading (or, for
deltas stored before sketches existed, building: one sketch each, persisted) the index on
first need. The old rule loaded every stored delta inside the lock (0.17 s each).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from mergenet.coordinator.artifacts import ArtifactStore
from mergenet.deltas.sketch import DeltaSketch, Vector, sketch_delta

log = logging.getLogger("mergenet.coordinator.copies")

DEFAULT_THRESHOLD = 0.7
"""Explained fraction at which a delta is refused as a copy (see module docstring)."""
DEFAULT_CANDIDATES = 12
"""Most earlier deltas (by per-tensor |cosine|) in the span of one tensor's fit."""


@dataclass(frozen=True)
class CopyVerdict:
    """How much of a new delta others' earlier deltas explain, and whose they are."""

    explained: float
    sources: tuple[tuple[str, str, float], ...]
    """(sha256, address, share of the delta's energy it explains), largest share first."""
    threshold: float

    @property
    def is_copy(self) -> bool:
        return self.explained >= self.threshold

    def message(self) -> str:
        names = "; ".join(f"{sha} by {addr} ({share:.0%})" for sha, addr, share in self.sources)
        return (
            f"this delta is a copy: {self.explained:.0%} of it is a combination of earlier "
            f"deltas of other contributors (refused at {self.threshold:.0%}): {names}; credit "
            "stays with the earliest — submit your own fine-tune"
        )


class _Rows:
    """The sketches of one tensor for every indexed delta (zero rows where it is absent)."""

    def __init__(self, dim: int):
        self.mat = np.zeros((8, dim), dtype=np.float32)
        self.norms = np.zeros(8, dtype=np.float64)

    def set(self, i: int, v: Vector) -> None:
        if i >= len(self.mat):
            grow = max(2 * len(self.mat), i + 1)
            self.mat = np.concatenate([self.mat, np.zeros_like(self.mat[: grow - len(self.mat)])])
            self.norms = np.concatenate([self.norms, np.zeros(grow - len(self.norms))])
        self.mat[i] = v
        self.norms[i] = float(np.linalg.norm(v.astype(np.float64)))


class CopyIndex:
    """Sketches of recorded deltas in memory, persisted in the store; thread-safe."""

    def __init__(
        self,
        store: ArtifactStore,
        threshold: float = DEFAULT_THRESHOLD,
        candidates: int = DEFAULT_CANDIDATES,
    ):
        self.store = store
        self.threshold = threshold
        self.candidates = candidates
        self._shas: list[str] = []
        self._addresses: list[str] = []
        self._pos: dict[str, int] = {}
        self._rows: dict[str, _Rows] = {}
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._pos

    def __len__(self) -> int:
        return len(self._shas)

    def add(self, sha256: str, address: str, sketch: DeltaSketch) -> None:
        """Index a recorded delta (idempotent); :meth:`persist` writes it to disk."""
        with self._lock:
            if sha256 in self._pos:
                return
            i = len(self._shas)
            for name, v in sketch.tensors.items():
                rows = self._rows.setdefault(name, _Rows(len(v)))
                if rows.mat.shape[1] == len(v):
                    rows.set(i, v)
            self._shas.append(sha256)
            self._addresses.append(address)
            self._pos[sha256] = i

    def persist(self, sha256: str, sketch: DeltaSketch) -> None:
        self.store.put_sketch(sha256, sketch.to_bytes())

    def sync(self, recorded: Iterable[tuple[str, str]], *, exclusive: bool = True) -> int:
        """Index every recorded (sha256, address) not indexed yet, in the given order: from its
        sketch file, or sketched from the stored delta and persisted (deltas stored before
        sketches existed, or a crash between recording and persisting). Returns how many were
        sketched. ``exclusive``: one thread at a time (a first-need warm-up is not repeated by
        every upload that arrives meanwhile); inside the submission lock pass False."""
        if exclusive:
            with self._sync_lock:
                return self._sync(recorded)
        return self._sync(recorded)

    def _sync(self, recorded: Iterable[tuple[str, str]]) -> int:
        built = 0
        for sha, address in recorded:
            if sha in self._pos:
                continue
            sketch = self._load(sha)
            if sketch is None:
                path = self.store.delta_path(sha)
                if not path.exists():
                    continue
                sketch = sketch_delta(path)
                self.persist(sha, sketch)
                built += 1
            self.add(sha, address, sketch)
        if built:
            log.info("sketched %d stored deltas that had no sketch yet", built)
        return built

    def _load(self, sha256: str) -> DeltaSketch | None:
        path = self.store.sketch_path(sha256)
        if not path.exists():
            return None
        try:
            return DeltaSketch.from_bytes(path.read_bytes())
        except ValueError:
            log.warning("sketch %s is unreadable; sketching the delta again", path.name)
            return None

    def check(self, sketch: DeltaSketch, address: str) -> CopyVerdict:
        """The explained fraction of ``sketch`` by indexed deltas of addresses other than
        ``address`` (see module docstring)."""
        with self._lock:
            n = len(self._shas)
            me = address.lower()
            others = np.array([a.lower() != me for a in self._addresses], dtype=bool)
            shares = np.zeros(n, dtype=np.float64)
            total = resid = 0.0
            for name, s in sketch.tensors.items():
                s64 = s.astype(np.float64)
                energy = float(s64 @ s64)
                total += energy
                rows = self._rows.get(name)
                if energy == 0 or rows is None or rows.mat.shape[1] != len(s) or not others.any():
                    resid += energy
                    continue
                resid += self._fit(rows, n, others, s64, energy, shares)
        explained = 1.0 - resid / total if total > 0 else 0.0
        return CopyVerdict(explained, self._sources(shares, total, explained), self.threshold)

    def _fit(
        self,
        rows: _Rows,
        n: int,
        others: np.ndarray,
        s: np.ndarray,
        energy: float,
        shares: np.ndarray,
    ) -> float:
        """Least squares of one tensor's sketch on its best candidates; the residual energy.
        Adds each candidate's explained part to ``shares``."""
        norms = rows.norms[:n]
        usable = others & (norms > 0)
        if not usable.any():
            return energy
        mat = rows.mat[:n]
        # one float32 matrix-vector product over every stored row (no copies): 200 rows × 39
        # tensors took 1.8 s through fancy-indexed float64 copies on the loaded machine
        dots = mat @ s.astype(np.float32)
        cos = np.where(usable, np.abs(dots) / np.maximum(norms, 1e-30), -1.0)
        cap = min(max(1, min(self.candidates, len(s) // 16)), int(usable.sum()))
        top = np.argpartition(-cos, cap - 1)[:cap] if cap < n else np.flatnonzero(usable)
        a = mat[top].astype(np.float64)  # candidates × k
        # normal equations on the candidates' Gram matrix (12 × 12, SVD-solved so collinear
        # candidates are fine): LAPACK's lstsq on the k × 12 system took 0.09 s of 0.11 s per
        # check with 200 stored sketches, its threads fighting the loaded machine
        b = a @ s
        coef, *_ = np.linalg.lstsq(a @ a.T, b, rcond=None)
        shares[top] += coef * b
        return float(np.sum((s - coef @ a) ** 2))

    def _sources(
        self, shares: np.ndarray, total: float, explained: float
    ) -> tuple[tuple[str, str, float], ...]:
        """The deltas that explain the most: at least a tenth of what is explained, top 3."""
        if total <= 0 or not len(shares):
            return ()
        frac = shares / total
        order = [int(i) for i in np.argsort(-frac)[:3]]
        return tuple(
            (self._shas[i], self._addresses[i], float(frac[i]))
            for i in order
            if frac[i] > 0 and frac[i] >= 0.1 * explained
        )
