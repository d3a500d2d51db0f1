"""Each contribution's impact: the seed's task effect, ΔPerformance / ΔParameters × Coverage.

Why this and not the contribution's gain G: a contribution is scored as current + δ at weight 1
against current, and a fine-tune forgets the tasks it was not trained on, so G is below zero
for nearly every honest specialist (every contributor of a demo run showed a negative "best
gain" although all were merged and paid). What a merge needs from δ is that it *moves* some
tasks a lot for little weight change; impact measures exactly that, from the same scoring
evaluation (no extra evaluation, nothing stored: computed on read from the ``Evaluation`` row):

* a task is **moved** when its answer loss falls by at least ``min_task_gain`` (relative; the
  loop's ``pool_min_task_gain``, 2 %: the rule that admits a contribution to the merge pool);
* **Coverage** = moved tasks / tasks;
* **ΔPerformance** = the mean relative answer-loss reduction over the moved tasks (0 when none);
* **ΔParameters** = the contribution's relative norm ‖δ‖/‖θ‖ (stored at upload);
* **impact** = ΔPerformance / ΔParameters × Coverage; None without a positive relative norm.

So a delta that cuts one task's answer loss by 30 % at relative norm 0.02 over 6 tasks has
impact 0.30 / 0.02 × 1/6 = 2.5; a junk or no-op delta moves nothing and has impact 0. The
per-task accuracy change (``acc_choice``, candidate − parent) is reported beside it, on the
scoring sample's 16 rows per task (one answer is 6 points: read it as a direction, not a size).
"""

from __future__ import annotations

import math
from typing import Any

from mergenet.protocol.results import PRIMARY_ACCURACY

MIN_TASK_GAIN = 0.02
"""The loop's default ``pool_min_task_gain``."""


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def per_task(parent: dict[str, Any], candidate: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per task of both results: relative answer-loss reduction and accuracy change."""
    p_tasks = (parent or {}).get("tasks") or {}
    c_tasks = (candidate or {}).get("tasks") or {}
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(p_tasks) & set(c_tasks)):
        p, c = p_tasks[name], c_tasks[name]
        pl, cl = _num(p.get("answer_loss")), _num(c.get("answer_loss"))
        pa, ca = _num(p.get(PRIMARY_ACCURACY)), _num(c.get(PRIMARY_ACCURACY))
        drop = (pl - cl) / pl if pl is not None and cl is not None and pl > 0 else None
        out[name] = {
            "loss_drop": drop,
            "accuracy_change": ca - pa if ca is not None and pa is not None else None,
        }
    return out


def impact(
    parent: dict[str, Any] | None,
    candidate: dict[str, Any] | None,
    relative_norm: float | None,
    min_task_gain: float = MIN_TASK_GAIN,
) -> dict[str, Any] | None:
    """The impact of δ from its scoring evaluation; None when there are no per-task results."""
    tasks = per_task(parent or {}, candidate or {})
    if not tasks:
        return None
    drops = {t: v["loss_drop"] for t, v in tasks.items() if v["loss_drop"] is not None}
    moved = sorted(t for t, d in drops.items() if d >= min_task_gain)
    coverage = len(moved) / len(tasks)
    performance = sum(drops[t] for t in moved) / len(moved) if moved else 0.0
    norm = _num(relative_norm)
    value = performance / norm * coverage if norm is not None and norm > 0 else None
    return {
        "impact": value,
        "delta_performance": performance,
        "delta_parameters": norm,
        "coverage": coverage,
        "tasks_moved": moved,
        "min_task_gain": min_task_gain,
        "tasks": tasks,
    }
