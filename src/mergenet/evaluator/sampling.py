"""Which rows are scored, and which rows may never be trained on.

Scoring draws, per task, a fresh seeded sample of ``n`` rows (for perplexity and accuracy)
and ``n²`` rows, capped by what the task holds, for the answer-loss term ("quadratic
sampling", seed §2). The seed is drawn fresh per evaluation (:func:`fresh_seed`) and recorded,
so a candidate cannot be tuned to a fixed sample yet every score can be recomputed. A base and
a candidate compared against each other must be scored with the *same* seed: the score is a
paired comparison.

The train/dev/held-out split is by content hash (:func:`split_of`), not by position:

* a row's split depends only on its question text, so it is stable when a task grows, when
  rows are reordered or re-sampled, and across machines and Python processes;
* the key is the question alone (no letters, no answer), so a row, its re-lettered copies
  (``force_dist``), its completion form, and any other row asking the same question all land
  in the same split: re-lettering or reformatting can never leak a held-out item into training;
* the bucket is ``sha256(question)[:4] mod 100`` with 15 held-out and 10 dev buckets, the same
  rule as ``mergenet.ecosystem.rows.split_of`` uses for the world's items, so rows built from
  the world and rows checked here agree;
* percentages are met in expectation, not exactly (e.g. 15% ± a few rows on a small task).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mergenet.evaluator.dharma import ANSWER_LINE, DharmaError, derive_rng, parse_row

R = TypeVar("R", bound=Mapping[str, Any])

SPLITS = ("train", "dev", "heldout")
DEV_PERCENT = 10
HELDOUT_PERCENT = 15


class HeldoutLeakError(ValueError):
    """Rows of the held-out split were about to be used for training."""


# --------------------------------------------------------------------------- split


def question_of(row: Mapping[str, Any]) -> str:
    """The question text of a row, whatever its form.

    Multiple-choice rows are parsed (the text before the ``A.`` line); completion-form rows
    (``"<q>\\nAnswer:"`` → answer text) give the question before ``\\nAnswer:``, so both forms of
    one item share a key. Any other row falls back to its canonical JSON (without
    ``subject``).
    """
    try:
        return parse_row(row).question
    except DharmaError:
        pass
    text = row.get("input")
    if isinstance(text, str):
        cue = "\n" + ANSWER_LINE
        return text[: -len(cue)] if text.endswith(cue) else text
    rest = {k: v for k, v in row.items() if k != "subject"}
    return json.dumps(rest, sort_keys=True, ensure_ascii=False)


def split_of_question(
    question: str, *, dev_percent: int = DEV_PERCENT, heldout_percent: int = HELDOUT_PERCENT
) -> str:
    """``"heldout"``, ``"dev"`` or ``"train"`` by the bucket ``sha256(question)[:4] mod 100``."""
    if min(dev_percent, heldout_percent) < 0 or dev_percent + heldout_percent > 100:
        raise ValueError(f"bad split percentages: dev {dev_percent}, heldout {heldout_percent}")
    bucket = int.from_bytes(hashlib.sha256(question.encode()).digest()[:4], "big") % 100
    if bucket < heldout_percent:
        return "heldout"
    return "dev" if bucket < heldout_percent + dev_percent else "train"


def split_of(
    row: Mapping[str, Any],
    *,
    dev_percent: int = DEV_PERCENT,
    heldout_percent: int = HELDOUT_PERCENT,
) -> str:
    """``"train"``, ``"dev"`` or ``"heldout"`` for a row of any form (see module docstring)."""
    return split_of_question(
        question_of(row), dev_percent=dev_percent, heldout_percent=heldout_percent
    )


def split_rows(
    rows: Iterable[R],
    *,
    dev_percent: int = DEV_PERCENT,
    heldout_percent: int = HELDOUT_PERCENT,
) -> dict[str, list[R]]:
    """All rows grouped by split, order preserved within each split."""
    out: dict[str, list[R]] = {s: [] for s in SPLITS}
    for row in rows:
        out[split_of(row, dev_percent=dev_percent, heldout_percent=heldout_percent)].append(row)
    return out


def assert_not_heldout(
    rows: Iterable[Mapping[str, Any]],
    *,
    dev_percent: int = DEV_PERCENT,
    heldout_percent: int = HELDOUT_PERCENT,
) -> None:
    """Raise :class:`HeldoutLeakError` if any row belongs to the held-out split.

    Call it on every training set: it is cheap, and it is the guarantee that held-out
    scores measure generalisation.
    """
    leaked = [
        r
        for r in rows
        if split_of(r, dev_percent=dev_percent, heldout_percent=heldout_percent) == "heldout"
    ]
    if leaked:
        first = str(leaked[0].get("input", leaked[0]))[:80]
        raise HeldoutLeakError(
            f"{len(leaked)} training row(s) belong to the held-out split, e.g. {first!r}"
        )


# --------------------------------------------------------------------------- scoring samples


def fresh_seed() -> int:
    """A new sampling seed for one evaluation (record it to make the score reproducible)."""
    return secrets.randbits(63)


def group_by_task(rows: Iterable[R]) -> dict[str, list[R]]:
    """Rows per ``subject``, tasks in sorted order, rows in input order."""
    out: dict[str, list[R]] = {}
    for row in rows:
        subject = row.get("subject")
        if not isinstance(subject, str):
            raise ValueError(f"row without a string 'subject': {str(row)[:80]}")
        out.setdefault(subject, []).append(row)
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class ScoringSample:
    """Per task: ``rows`` (n, for PPL and accuracy) and ``loss_rows`` (min(n², held), for L).

    ``loss_rows`` extends ``rows``: both are prefixes of one seeded permutation of the task.
    """

    seed: int
    n: int
    rows: dict[str, list[Mapping[str, Any]]]
    loss_rows: dict[str, list[Mapping[str, Any]]]


def sample_for_scoring(rows: Iterable[Mapping[str, Any]], n: int, seed: int) -> ScoringSample:
    """Draw the scoring sample: per task ``min(n, held)`` rows and ``min(n², held)`` rows.

    Each task's permutation comes from ``(seed, task)`` alone, so adding a task changes no
    other task's sample. Pass only evaluation rows (the held-out set) here.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    per_task, per_task_loss = {}, {}
    for task, task_rows in group_by_task(rows).items():
        order = derive_rng(seed, "score", task).sample(range(len(task_rows)), len(task_rows))
        per_task[task] = [task_rows[i] for i in order[:n]]
        per_task_loss[task] = [task_rows[i] for i in order[: n * n]]
    return ScoringSample(seed=seed, n=n, rows=per_task, loss_rows=per_task_loss)
