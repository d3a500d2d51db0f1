"""Fresh, private scoring rows: new dev-split questions drawn from a secret, per decision.

Every scoring decision of the loop (contribution scoring, selection, confirmation) used to
read one fixed public file (the world's ``dev.jsonl``, 64 rows per task); a contributor who
trained on those rows was paid 5x an honest one. Now each decision gets its own rows:

* **generator** (:func:`fresh_rows`): per task an RNG keyed by
  ``HMAC-SHA256(secret, f"{label}:{seed}:{task}")`` draws new questions of the world's task
  family (:data:`mergenet.ecosystem.tasks.TASKS`), keeping only questions whose hash split
  (:func:`mergenet.evaluator.sampling.split_of_question`) is ``dev`` — never a train question
  (contributors train on the train split) and never a held-out one (held-out stays the
  reporting set). Questions are distinct within a task and the correct letter cycles A-D,
  so every letter is the answer equally often (``per_task`` a multiple of 4: exactly).
  Without the secret the rows cannot be predicted; with it (revealed when its row epoch
  closes) anyone regenerates them bit for bit (:func:`regenerate`).
* **private pool** (:func:`pool_rows`): for a coordinator started on someone's own
  ``--dev-rows`` file whose subjects are not world task families there is no generator;
  the file is never served, and rows are taken without replacement along a per-subject
  permutation keyed by a private key, a persisted cursor retiring them
  (:mod:`mergenet.coordinator.decision_rows`).

The secret only hides *which* dev questions are drawn. The generators and the split rule
are public, so a family's whole dev question space can be enumerated; it is large for most
families (``add`` 808 dev questions, ``compare`` ~98,000, ``lookup`` millions) but small for
a few (counted: ``add_small`` 85, ``successor`` 91, ``plus_ten`` 94, ``bits`` ~96,
``predecessor`` 99), where 64 fresh rows are most of the space. Measured on the default
world (10 tasks x 64 rows): 209 of 640 fresh rows (33%) ask a question of the public
``dev.jsonl``, nearly all in those five families (``bits`` 50, ``successor`` 45,
``predecessor`` 44, ``plus_ten`` 41, ``convert`` 22 of 64 each, the other five 0-4). Fresh
rows defeat training on the published rows for the large families only; the small ones
need larger question spaces (a world change), not a better secret.

Cost (``python -m mergenet.ecosystem.fresh_rows``, AMD EPYC, 2 cores shared with 6 other
jobs): 66 ms median per call for the world's 10 tasks x 64 rows (``bits``, ``double``,
``repeat`` ~30 ms each: most draws fall outside dev), against seconds of scoring per
evaluation; the loop caches the selection sample's rows, drawn once per version.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Mapping, Sequence
from typing import Any

from mergenet.ecosystem.tasks import TASKS, TaskFamily
from mergenet.evaluator.items import LETTERS, Item
from mergenet.evaluator.sampling import split_of_question

GENERATOR_PREFIX = "gen"
POOL_PREFIX = "pool"


def task_rng(secret: bytes, label: str, seed: int, task: str) -> random.Random:
    """The RNG of one task's rows: seeded by ``HMAC-SHA256(secret, "label:seed:task")``.

    ``random.Random`` seeds from bytes through SHA-512, independent of ``PYTHONHASHSEED``,
    so every process and machine draws the same stream.
    """
    key = hmac.new(secret, f"{label}:{seed}:{task}".encode(), hashlib.sha256).digest()
    return random.Random(key)


def _draw_dev(task: TaskFamily, rng: random.Random, per_task: int) -> list[Item]:
    """``per_task`` distinct dev-split questions of ``task``; answer letters balanced."""
    seen: set[str] = set()
    items: list[Item] = []
    attempts = 0
    while len(items) < per_task:
        attempts += 1
        if attempts > 400 * per_task + 20_000:
            raise ValueError(
                f"task {task.name!r} has too few distinct dev questions for per_task={per_task}"
            )
        question, answer, wrong = task.draw(rng)
        if question in seen or split_of_question(question) != "dev":
            continue
        seen.add(question)
        position = len(items) % len(LETTERS)
        choices = list(wrong)
        rng.shuffle(choices)
        choices.insert(position, answer)
        items.append(Item(task.name, question, tuple(choices), position))
    rng.shuffle(items)
    return items


def fresh_rows(
    secret: bytes, tasks: Sequence[str], *, label: str, seed: int, per_task: int
) -> list[dict[str, str]]:
    """Deterministic Dharma rows (the world's ``dev.jsonl`` format) for one decision.

    ``per_task`` rows of each task in ``tasks`` (in sorted task order), new dev-split
    questions drawn from the secret (see the module docstring). Each task's rows depend only
    on ``(secret, label, seed, task)``: adding a task changes no other task's rows.
    """
    if not secret:
        raise ValueError("fresh_rows needs a non-empty secret")
    if isinstance(per_task, bool) or not isinstance(per_task, int) or per_task < 1:
        raise ValueError(f"per_task must be a positive integer, got {per_task!r}")
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"not world task families: {unknown}")
    rows: list[dict[str, str]] = []
    for task in sorted(set(tasks)):
        rng = task_rng(secret, label, seed, task)
        rows.extend(it.dharma_row() for it in _draw_dev(TASKS[task], rng, per_task))
    return rows


def generator_label(purpose: str, per_task: int, tasks: Sequence[str]) -> str:
    """The recorded ``rows_label`` of generated rows: ``gen:<label>:<per_task>:<tasks>``.

    Everything :func:`fresh_rows` needs besides the secret and the seed, so an evaluation
    row (``row_epoch``, ``rows_label``, ``sample_seed``) plus the revealed secret regenerate
    its rows with no other input.
    """
    if ":" in purpose or any("," in t or ":" in t for t in tasks):
        raise ValueError("labels and task names may not contain ':' or ','")
    return f"{GENERATOR_PREFIX}:{purpose}:{per_task}:{','.join(sorted(set(tasks)))}"


def regenerate(secret: bytes, rows_label: str, seed: int) -> list[dict[str, str]]:
    """The rows a recorded generator ``rows_label`` stands for (audits, tests).

    Pool labels (``pool:…``) need the private row file and key; see
    :meth:`mergenet.coordinator.decision_rows.DecisionRows.regenerate`.
    """
    prefix, _, rest = rows_label.partition(":")
    if prefix != GENERATOR_PREFIX:
        raise ValueError(f"not a generator rows label: {rows_label[:40]!r}")
    label, per_task, tasks = rest.split(":")
    return fresh_rows(secret, tasks.split(","), label=label, seed=seed, per_task=int(per_task))


# --------------------------------------------------------------------------- private pool


def _permutation(key: bytes, subject: str, size: int) -> list[int]:
    rng = random.Random(hmac.new(key, f"pool:{subject}".encode(), hashlib.sha256).digest())
    return rng.sample(range(size), size)


def pool_rows(
    key: bytes, rows: Sequence[Mapping[str, Any]], *, start: int, per_task: int
) -> tuple[list[dict[str, Any]], bool]:
    """Positions ``[start, start + per_task)`` of each subject's keyed permutation.

    Each subject's rows are permuted by ``HMAC-SHA256(key, "pool:<subject>")``; consecutive
    cursors take disjoint rows until a subject runs out, then positions wrap (a used row
    comes back). Returns the rows and whether any subject wrapped (the caller warns: the
    pool is exhausted and rows it already revealed are scored again).
    """
    if not key:
        raise ValueError("pool_rows needs a non-empty key")
    if per_task < 1 or start < 0:
        raise ValueError(f"bad pool window: start {start}, per_task {per_task}")
    by_subject: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_subject.setdefault(str(row.get("subject", "")), []).append(row)
    out: list[dict[str, Any]] = []
    wrapped = False
    for subject, subject_rows in sorted(by_subject.items()):
        size = len(subject_rows)
        order = _permutation(key, subject, size)
        take = min(per_task, size)
        wrapped = wrapped or start + take > size
        out.extend(dict(subject_rows[order[(start + i) % size]]) for i in range(take))
    return out, wrapped


def pool_label(start: int, per_task: int) -> str:
    """The recorded ``rows_label`` of pool rows: ``pool:<start>:<per_task>``."""
    return f"{POOL_PREFIX}:{start}:{per_task}"


def _measure() -> None:  # pragma: no cover - `python -m mergenet.ecosystem.fresh_rows`
    import secrets
    import time

    from mergenet.ecosystem.spec import WorldSpec

    tasks = WorldSpec().tasks
    timings = []
    for seed in range(20):
        t0 = time.perf_counter()
        fresh_rows(secrets.token_bytes(32), tasks, label="m", seed=seed, per_task=64)
        timings.append(time.perf_counter() - t0)
    timings.sort()
    print(f"{len(tasks)} tasks x 64 rows: median {timings[10] * 1e3:.1f} ms")


if __name__ == "__main__":  # pragma: no cover
    _measure()
