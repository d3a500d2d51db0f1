"""The core's live feed (seed §4.2.1): the current core version measured again and again on
freshly sampled rows, so a viewer sees the core itself improve, not the candidates' noise.

Why it exists: the page used to plot every candidate evaluation's S — 80 points jumping between
0.0 and 0.62 on a demo run, each on a different 16-row sample and a different candidate — so
the core's progress was invisible. A feed point is always *the core* (or the base, for the
comparison), always on rows the loop never selects on, so points of one version differ only by
sampling noise, which the band shows. Rows (``feed_rows``, :func:`rows_for`): by default new
private rows per point, generated under the label ``feed`` by the row epoch's secret
(:mod:`mergenet.coordinator.decision_rows`): never a row of a decision, never repeated across
points (so a version's accumulated rows are independent, as the band assumes), and carried
inside the task, so workers over HTTP score them too; with a private row pool instead of a
generator, the held-out set (the pool retires every row it hands out).

How a point is made (scheduling in :meth:`mergenet.coordinator.loop.EvolutionLoop._next_feed`):
a candidate of kind ``feed`` whose recipe is ``version + 0·δ`` (task arithmetic, one stored
contribution at weight 0: no strategy takes zero deltas, and θ + 0·δ = θ exactly) is evaluated
by the ordinary pool. The worker scores the recipe's parent — the version — on the seeded
sample; that ``parent_result`` is the point (its own result is the same weights again). It
runs only when a pool slot is free, no contribution scoring or confirmation waits, no other
feed point is in flight, and ``feed_seconds`` passed since the last one, so it never delays a
decision and costs at most one evaluation per ``feed_seconds``. Measured on the world
(world-db45132220f1, ``python benchmarks/feed_point.py``, AMD EPYC, 2 cores shared with ~7
other jobs, two runs of 3 points): 4.2–12 s per point on 10 tasks × 16 fresh rows as the load
varied, so at the 30 s default up to ~40 % of one slot on that machine. Half of it is the
worker scoring the weight-0 candidate after its parent (identical results, checked): a worker
short-cut for all-zero recipes would halve it. The base is measured too, while it has fewer
points than the current version (up to :data:`BASE_POINTS`), so the per-task bars compare the
two on the feed's accumulated rows.

Storage, and why no migration: a feed point is a ``Candidate`` (kind ``feed``, status ``done``)
plus one ``Evaluation`` (purpose ``feed``) whose ``result`` and ``parent_result`` are the
core's measurement and whose ``score``/``baseline`` hold its macro accuracy (``gain`` 0). So
points get the evaluations table's autoincrement ids — the live stream's cursor already covers
them, a page resumes without gaps — and crash safety is the loop's (a feed candidate left queued
by a restart is failed by the next ``_next_feed``). S, H(s), selection, rewards and
``max_evaluations`` never see them: they read only the other purposes and kinds.

Confidence band. Per task, the number right is ``c = acc·n`` (``acc_choice`` on ``n`` rows);
the 95 % band of a macro accuracy over T tasks is ±1.96·√(Σ_t p̃_t(1−p̃_t)/n_t)/T with the
Agresti–Coull p̃ = (c+2)/(n+4), so a task at 0 % or 100 % on 16 rows still has width. One
point of 16 rows × 6 tasks is ±~0.09; a version's accumulated rows shrink that as 1/√points.

This module is read side and recording only: SQLAlchemy and the table models, no torch, no
scheduler (the ``read-side`` import contract).
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.coordinator.status import CandidateStatus, ContributionStatus, Kind, Purpose
from mergenet.protocol.results import PRIMARY_ACCURACY

log = logging.getLogger("mergenet.coordinator.feed")

Z95 = 1.959964
BASE_POINTS = 40
"""The base is measured until it has this many feed points (or as many as the current)."""
RECENT = 5000
"""Feed points a page gets when it opens (the newest)."""


def _iso(t: Any) -> str | None:
    return t.isoformat() if t is not None else None


# ---------------------------------------------------------------- statistics


def counts(result: dict[str, Any] | None) -> dict[str, tuple[int, int]]:
    """Per task (number right, rows) of the primary accuracy in an ``EvalResult`` dict."""
    out: dict[str, tuple[int, int]] = {}
    for name, t in ((result or {}).get("tasks") or {}).items():
        n = int(t.get("n_rows") or 0)
        acc = t.get(PRIMARY_ACCURACY)
        if n > 0 and isinstance(acc, int | float) and math.isfinite(acc):
            out[name] = (round(float(acc) * n), n)
    return out


def _var(right: int, n: int) -> float:
    p = (right + 2) / (n + 4)
    return p * (1 - p) / n


def task_stat(right: int, n: int) -> dict[str, Any]:
    """Accuracy of one task with its 95 % band (Agresti–Coull variance)."""
    acc = right / n
    half = Z95 * math.sqrt(_var(right, n))
    return {"acc": acc, "low": max(0.0, acc - half), "high": min(1.0, acc + half), "rows": n}


def macro_stat(per_task: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Macro accuracy (unweighted mean over tasks) with its 95 % band; None values when empty."""
    if not per_task:
        return {"macro": None, "low": None, "high": None, "rows": 0}
    k = len(per_task)
    macro = sum(r / n for r, n in per_task.values()) / k
    half = Z95 * math.sqrt(sum(_var(r, n) for r, n in per_task.values())) / k
    return {
        "macro": macro,
        "low": max(0.0, macro - half),
        "high": min(1.0, macro + half),
        "rows": sum(n for _, n in per_task.values()),
    }


def accumulate(results: Iterable[dict[str, Any] | None]) -> dict[str, tuple[int, int]]:
    """Sum the per-task counts of several results (a version's accumulated feed rows)."""
    total: dict[str, tuple[int, int]] = {}
    for result in results:
        for name, (r, n) in counts(result).items():
            r0, n0 = total.get(name, (0, 0))
            total[name] = (r0 + r, n0 + n)
    return total


# ---------------------------------------------------------------- recording


def record(
    s: Session,
    cand: m.Candidate,
    seed: int,
    result: dict[str, Any],
    seconds: float,
    worker: str | None = None,
) -> None:
    """Store a finished feed evaluation (``result``: the version's own measurement;
    ``worker``: the pool's stamp, as for every evaluation)."""
    stat = macro_stat(counts(result))
    macro = float(stat["macro"]) if stat["macro"] is not None else 0.0
    s.add(
        m.Evaluation(
            candidate_id=cand.id,
            purpose=Purpose.FEED,
            sample_seed=seed,
            result=result,
            parent_result=result,
            relative_distance=0.0,
            score=macro,
            baseline=macro,
            gain=0.0,
            breakdown={"feed": stat},
            seconds=seconds,
            worker=worker,
        )
    )
    cand.score, cand.gain, cand.status = macro, 0.0, CandidateStatus.DONE


def zero_delta(s: Session, version: m.Version) -> str | None:
    """A stored contribution for the weight-0 recipe: one the version merged (already built
    into a version once), else the newest scored one in the merge pool, else the newest scored
    one; None before any was scored."""
    for c in (version.recipe or {}).get("contributions") or []:
        sha = c.get("sha256") if isinstance(c, dict) else None
        if isinstance(sha, str):
            return sha
    return s.scalar(
        select(m.Contribution.sha256)
        .where(m.Contribution.status == ContributionStatus.SCORED)
        .order_by(m.Contribution.in_pool.desc(), m.Contribution.id.desc())
        .limit(1)
    )


def target(s: Session, current: m.Version) -> str:
    """Which version the next feed point measures: the base while it has fewer points than
    the current version (and fewer than :data:`BASE_POINTS`), else the current version."""
    base = s.scalar(select(m.Version.hash).order_by(m.Version.id).limit(1))
    if base is None or base == current.hash:
        return current.hash
    n = point_counts(s, base, current.hash)
    return base if n[base] < min(n[current.hash], BASE_POINTS) else current.hash


def rows_for(setting: str, source: str, row_sets: Iterable[str]) -> str:
    """The feed's rows on this coordinator: a named row set it has; else ``fresh`` (generated
    rows, label ``feed``) when decision rows are generated; else ``heldout`` when it has one,
    because a private row pool retires every row it hands out and a point every 30 s would
    drain it; else ``fresh`` from that pool all the same (logged)."""
    sets = set(row_sets)
    if setting != "fresh" and setting in sets:
        return setting
    if source == "generator":
        return "fresh"
    if "heldout" in sets:
        return "heldout"
    log.warning("the live feed draws from the private row pool (no held-out set to use)")
    return "fresh"


def point_counts(s: Session, *hashes: str) -> dict[str, int]:
    """Finished feed points per version hash (for the scheduler's base-or-current choice)."""
    rows = s.execute(
        select(m.Candidate.parent_hash, func.count())
        .where(
            m.Candidate.kind == Kind.FEED,
            m.Candidate.status == CandidateStatus.DONE,
            m.Candidate.parent_hash.in_(hashes),
        )
        .group_by(m.Candidate.parent_hash)
    ).all()
    found = {str(h): int(n) for h, n in rows}
    return {h: found.get(h, 0) for h in hashes}


# ---------------------------------------------------------------- read side


def point(e: m.Evaluation, c: m.Candidate) -> dict[str, Any]:
    """One feed point as the page draws it."""
    per_task = counts(e.result)
    return {
        "id": e.id,
        "at": _iso(e.created_at),
        "version": c.parent_hash,
        **macro_stat(per_task),
        "tasks": {t: r / n for t, (r, n) in sorted(per_task.items())},
    }


def _feed_rows(s: Session, limit: int = RECENT) -> list[tuple[m.Evaluation, m.Candidate]]:
    q = (
        select(m.Evaluation, m.Candidate)
        .join(m.Candidate, m.Candidate.id == m.Evaluation.candidate_id)
        .where(m.Evaluation.purpose == Purpose.FEED)
        .order_by(m.Evaluation.id.desc())
        .limit(limit)
    )
    return [(e, c) for e, c in reversed(s.execute(q).all())]


def _accumulated(s: Session, version_hash: str) -> dict[str, tuple[int, int]]:
    q = (
        select(m.Evaluation.result)
        .join(m.Candidate, m.Candidate.id == m.Evaluation.candidate_id)
        .where(m.Evaluation.purpose == Purpose.FEED, m.Candidate.parent_hash == version_hash)
    )
    return accumulate(s.scalars(q))


def _versions(s: Session) -> list[m.Version]:
    return list(s.scalars(select(m.Version).order_by(m.Version.id)))


def version_levels(s: Session) -> list[dict[str, Any]]:
    """Each version's accumulated feed accuracy with its band: the chart's step line."""
    out = []
    for v in _versions(s):
        acc = _accumulated(s, v.hash)
        points = point_counts(s, v.hash)[v.hash]
        out.append(
            {"hash": v.hash, "at": _iso(v.created_at), "is_base": v.recipe is None}
            | macro_stat(acc)
            | {"points": points}
        )
    return out


def task_bars(s: Session) -> dict[str, Any]:
    """Per task: the current core against the base on each one's accumulated feed rows."""
    versions = _versions(s)
    out: dict[str, Any] = {"metric": PRIMARY_ACCURACY, "base": None, "current": None, "tasks": {}}
    if not versions:
        return out
    base, cur = versions[0], versions[-1]
    out["base"], out["current"] = base.hash, cur.hash
    b, c = _accumulated(s, base.hash), _accumulated(s, cur.hash)
    for name in sorted(set(b) | set(c)):
        out["tasks"][name] = {
            "base": task_stat(*b[name]) if name in b else None,
            "current": task_stat(*c[name]) if name in c else None,
        }
    out["base_rows"] = sum(n for _, n in b.values())
    out["current_rows"] = sum(n for _, n in c.values())
    return out


_memo: weakref.WeakKeyDictionary[Any, tuple[tuple[int, int], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)
"""Per database (engine): the last answer of :func:`feed` and the newest ids it saw."""


def feed(s: Session) -> dict[str, Any]:
    """``GET /api/feed``: points (newest :data:`RECENT`), per-version levels, per-task bars.

    Every open page re-reads this when a feed point or a version arrives, so the answer is
    kept per process until a newer feed evaluation or version exists (one cheap max-id query
    per request; the levels re-read every feed result, once per new point, not per viewer).
    """
    key = (
        int(
            s.scalar(select(func.max(m.Evaluation.id)).where(m.Evaluation.purpose == Purpose.FEED))
            or 0
        ),
        int(s.scalar(select(func.max(m.Version.id))) or 0),
    )
    bind = s.get_bind()
    hit = _memo.get(bind)
    if hit is not None and hit[0] == key:
        return hit[1]
    data = {
        "points": [point(e, c) for e, c in _feed_rows(s)],
        "levels": version_levels(s),
        "tasks": task_bars(s),
    }
    _memo[bind] = (key, data)
    return data
