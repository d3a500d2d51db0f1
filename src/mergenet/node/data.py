"""A contributor's own rows: ``{"input": "...", "output": "..."}`` per JSONL line.

Rows are checked before any training starts, and the first problem is reported with its
line number and what to change. Each row is trained as the compact JSON text the network
scores (``{`` … ``}``): the prompt (everything up to the answer) and the answer, encoded
separately exactly as the evaluator encodes them, so training and scoring see the same tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mergenet.evaluator.encoding import continuation
from mergenet.node.errors import NodeError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MAX_ROW_CHARS = 4000


@dataclass(frozen=True)
class TrainRow:
    input: str
    output: str

    @property
    def prompt(self) -> str:
        """The row's JSON text up to where the answer's characters start."""
        return json.dumps({"input": self.input, "output": ""}, ensure_ascii=False)[:-2]

    @property
    def continuation(self) -> str:
        return continuation(self.output)


def read_rows(path: Path) -> list[TrainRow]:
    """Every row of ``path``; a NodeError names the first bad line and how to fix it."""
    if not path.exists():
        raise NodeError(f"no data file at {path}")
    rows: list[TrainRow] = []
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            lines = list(handle)
        except UnicodeDecodeError as exc:
            raise NodeError(f"{path} is not UTF-8 text ({exc.reason}): save it as UTF-8") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        rows.append(_parse(path, number, line))
    if not rows:
        raise NodeError(f"{path} has no rows: write one JSON object per line")
    return rows


def _parse(path: Path, number: int, line: str) -> TrainRow:
    where = f"{path.name} line {number}"
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise NodeError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise NodeError(f'{where}: expected an object like {{"input": "...", "output": "..."}}')
    for key in ("input", "output"):
        if key not in row:
            raise NodeError(f'{where}: missing "{key}" (each row needs "input" and "output")')
        if not isinstance(row[key], str):
            raise NodeError(f'{where}: "{key}" must be a string, got {type(row[key]).__name__}')
    if not row["output"]:
        raise NodeError(f'{where}: "output" is empty: give the answer the model should learn')
    if len(row["input"]) + len(row["output"]) > MAX_ROW_CHARS:
        raise NodeError(f"{where}: row longer than {MAX_ROW_CHARS} characters: shorten it")
    return TrainRow(row["input"], row["output"])


def encode_rows(
    tokenizer: PreTrainedTokenizerBase, rows: list[TrainRow]
) -> list[tuple[list[int], int]]:
    """(token ids, answer start) per row, for ``ecosystem.training.train_lm``."""
    prompts = tokenizer([r.prompt for r in rows], add_special_tokens=False)["input_ids"]
    answers = tokenizer([r.continuation for r in rows], add_special_tokens=False)["input_ids"]
    return [(p + a, len(p)) for p, a in zip(prompts, answers, strict=True)]
