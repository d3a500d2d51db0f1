"""Dharma rows and the Dharma set builder.

A Dharma row (pharaouk/dharma) is ``{"input": "<question>\\nA. ..\\nB. ..\\nAnswer:",
"output": "B", "subject": "..."}``. This module parses such rows, renders them back, turns
them into their *completion form* (the answer text itself follows the question, which a tiny
model learns long before it learns to map an answer onto a letter), and builds a Dharma set
from a config in the shape of upstream's ``config.yml`` (:mod:`~mergenet.evaluator.dharma_config`,
:mod:`~mergenet.evaluator.dharma_build`).

The builder avoids upstream's bugs on purpose:

* each benchmark is sampled with its own count (upstream's TruthfulQA used OBQA's count);
* choice labels and answers use the same letters, always ``A. text`` lines, and
  ``Answer:`` is the last line, after the choices;
* every random draw comes from a ``random.Random`` seeded from ``data_seed`` and a purpose
  string (never the global RNG, never ``hash()``), so the output is byte-for-byte a
  function of the config and the source files;
* ``force_dist`` balances answer letters by *moving the correct choice* inside ``input``
  (and re-lettering ``output`` to match), instead of subsampling by answer key and hoping.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

ANSWER_LINE = "Answer:"
LETTERS = string.ascii_uppercase
_CHOICE_RE = re.compile(r"^([A-Z])\. (.*)$", re.DOTALL)

# Choices that point at other choices ("all of the above", "both A and B") stop being true
# when choices move, so ``force_dist`` leaves rows that contain one where they are.
_POSITIONAL_RES = (
    re.compile(
        r"\b(all|none|both|neither|any)\s+of\s+the\s+"
        r"(above|below|others|other options|options|choices|answers)\b",
        re.IGNORECASE,
    ),
    re.compile(r"\b(both|either|neither|only)\s+\(?[A-Z]\)?\s*(and|or|nor|&)\s*\(?[A-Z]\)?(?!\w)"),
    re.compile(r"^\(?[A-Z]\)?(\s*(,|and|&|or)\s*\(?[A-Z]\)?)+\.?$"),
)


class DharmaError(ValueError):
    """A Dharma row, config or source that cannot be used; the message says where and why."""


class ParsedRow(NamedTuple):
    """A multiple-choice row split into its parts; unpacks as ``question, choices, answer``."""

    question: str
    choices: tuple[str, ...]
    answer: int


# --------------------------------------------------------------------------- rows


def parse_row(row: Mapping[str, Any]) -> ParsedRow:
    """Split a Dharma row into question text, choice texts and the answer's index.

    The choices are the run of ``X. text`` lines (``A``, ``B``, ... in order) directly before
    the final ``Answer:`` line; the question is everything before the ``A.`` line, kept
    verbatim (MMLU's "The following are multiple choice questions ..." preamble included).
    Choice texts are kept exactly, trailing spaces included, so that
    ``render_row(parse_row(r))`` reproduces ``r["input"]``. Raises :class:`DharmaError`.
    """
    text = row.get("input")
    output = row.get("output")
    if not isinstance(text, str) or not isinstance(output, str):
        raise DharmaError('a Dharma row needs string fields "input" and "output"')
    lines = text.rstrip().split("\n")
    if len(lines) < 3 or lines[-1].strip() != ANSWER_LINE:
        raise DharmaError('"input" must end with a line "Answer:" after the choice lines')
    end = len(lines) - 1  # index of the "Answer:" line
    start = end
    while start > 0 and _CHOICE_RE.match(lines[start - 1]):
        start -= 1
    labels = [m.group(1) for line in lines[start:end] if (m := _CHOICE_RE.match(line))]
    # the choices are the last suffix of that run that reads A, B, C, ... in order
    first = next(
        (s for s in range(len(labels)) if labels[s:] == list(LETTERS[: len(labels) - s])),
        None,
    )
    if first is None:
        raise DharmaError(
            '"input" must list its choices as consecutive lines "A. ...", "B. ...", ... '
            'directly before "Answer:"'
        )
    i = start + first
    choices = [m.group(2) for line in lines[i:end] if (m := _CHOICE_RE.match(line))]
    if len(choices) < 2:
        raise DharmaError("a multiple-choice row needs at least two choices")
    question = "\n".join(lines[:i])
    if not question.strip():
        raise DharmaError('"input" has no question text before the choices')
    letter = output.strip()
    if len(letter) != 1 or letter not in LETTERS[: len(choices)]:
        raise DharmaError(
            f'"output" must be one of the choice letters {LETTERS[: len(choices)]}, got {output!r}'
        )
    return ParsedRow(question, tuple(choices), LETTERS.index(letter))


def render_row(parsed: ParsedRow, subject: str | None = None) -> dict[str, str]:
    """The Dharma row for ``parsed``: choices as ``A. text`` lines, then ``Answer:``."""
    if not 2 <= len(parsed.choices) <= len(LETTERS):
        raise DharmaError(f"a row needs 2..{len(LETTERS)} choices, got {len(parsed.choices)}")
    if not 0 <= parsed.answer < len(parsed.choices):
        raise DharmaError(f"answer index {parsed.answer} out of range")
    if any("\n" in c for c in parsed.choices):
        raise DharmaError("a choice text cannot contain a line break")
    body = "\n".join(f"{LETTERS[j]}. {c}" for j, c in enumerate(parsed.choices))
    row = {"input": f"{parsed.question}\n{body}\n{ANSWER_LINE}", "output": LETTERS[parsed.answer]}
    if subject is not None:
        row["subject"] = subject
    return row


def completion_form(row: Mapping[str, Any]) -> dict[str, str]:
    """The row with the answer *text* after the question: ``{"input": "<q>\\nAnswer:",
    "output": "<correct choice text>"}`` (``subject`` kept when present).

    The choice text is stripped of surrounding whitespace (MMLU carries trailing spaces
    that would only add noise to the answer loss).
    """
    question, choices, answer = parse_row(row)
    out = {"input": f"{question}\n{ANSWER_LINE}", "output": choices[answer].strip()}
    if "subject" in row:
        out["subject"] = row["subject"]
    return out


def with_answer_at(parsed: ParsedRow, target: int) -> ParsedRow:
    """The same question with the correct choice moved to position ``target``.

    The correct choice and the one at ``target`` swap places; every other choice keeps its
    letter, so the row changes as little as possible and stays internally consistent.
    """
    if not 0 <= target < len(parsed.choices):
        raise DharmaError(f"target index {target} out of range")
    choices = list(parsed.choices)
    choices[parsed.answer], choices[target] = choices[target], choices[parsed.answer]
    return ParsedRow(parsed.question, tuple(choices), target)


def is_positional(parsed: ParsedRow) -> bool:
    """True when a choice refers to other choices by position ("all of the above", "both A
    and B"): moving choices would make such a row wrong, so balancing leaves it alone."""
    return any(rx.search(c.strip()) for c in parsed.choices for rx in _POSITIONAL_RES)


def balance_letters(rows: Sequence[ParsedRow], rng: random.Random) -> list[ParsedRow]:
    """Re-letter rows so that answer letters are as even as possible.

    Rows are grouped by their number of choices; within a group, rows with positional
    choices keep their letter and the others receive target letters by water-filling (each
    next target goes to the currently rarest letter), so every letter's count ends within one
    of the others whenever the fixed rows allow it. The targets are shuffled with ``rng``
    before being handed out, so which row gets which letter carries no pattern.
    """
    out = list(rows)
    groups: dict[int, list[int]] = {}
    for idx, row in enumerate(rows):
        groups.setdefault(len(row.choices), []).append(idx)
    for m, idxs in sorted(groups.items()):
        counts = [0] * m
        movable = []
        for idx in idxs:
            if is_positional(rows[idx]):
                counts[rows[idx].answer] += 1
            else:
                movable.append(idx)
        targets = []
        for _ in movable:
            j = min(range(m), key=lambda k: (counts[k], k))
            counts[j] += 1
            targets.append(j)
        rng.shuffle(targets)
        for idx, target in zip(movable, targets, strict=True):
            out[idx] = with_answer_at(rows[idx], target)
    return out


def derive_rng(seed: int, *purpose: str) -> random.Random:
    """A ``random.Random`` for one purpose, seeded from ``seed`` and the purpose strings via
    SHA-256, so draws for one benchmark do not shift when another is added and no draw
    depends on the global RNG or on Python's per-process string hashing."""
    material = "\x1f".join([str(seed), *purpose]).encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))


# --------------------------------------------------------------------------- sources


def read_jsonl_rows(path: Path) -> list[ParsedRow]:
    """Parse every row of a local JSONL source; errors name the file and line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DharmaError(f"{path}: cannot read source ({exc.strerror or exc})") from exc
    rows = []
    with handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DharmaError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(data, dict):
                raise DharmaError(f"{path}:{lineno}: a row must be a JSON object")
            try:
                rows.append(parse_row(data))
            except DharmaError as exc:
                raise DharmaError(f"{path}:{lineno}: {exc}") from exc
    return rows


def load_hf_rows(dataset_id: str, *, split: str, subset: str | None) -> list[ParsedRow]:
    """Rows of a Hugging Face dataset already in Dharma format (``input``/``output``
    columns), e.g. a set built and uploaded by upstream dharma. Needs ``datasets`` and a
    network (or a warm HF cache)."""
    try:
        import datasets
    except ImportError as exc:
        raise DharmaError(
            f"source {dataset_id!r} is not a local file, and loading it as a Hugging Face "
            "dataset needs the `datasets` package: pip install datasets"
        ) from exc
    try:
        ds = datasets.load_dataset(dataset_id, subset, split=split)
    except Exception as exc:
        raise DharmaError(
            f"cannot load Hugging Face dataset {dataset_id!r} (split {split!r}): {exc}. "
            "Offline? Use a local JSONL file of Dharma rows as the source instead."
        ) from exc
    rows = []
    for i, data in enumerate(ds):
        try:
            rows.append(parse_row(data))
        except DharmaError as exc:
            raise DharmaError(f"{dataset_id}[{split}] row {i}: {exc}") from exc
    return rows
