"""One multiple-choice problem (``Item``) and the two row forms it renders as.

Every row is one JSON object; its text is the compact JSON serialisation, so ``{`` starts and
``}`` ends it and rows pack back to back with no padding (seed §1.1). A completion row
``{"input": "<question>\\nAnswer:", "output": "<answer>"}`` is what contributors train on;
the Dharma row puts the four choices in ``input`` and a letter in ``output``. The scorer reads
items; the world (``mergenet.ecosystem``) generates them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mergenet.evaluator.dharma import parse_row

LETTERS = "ABCD"
ANSWER_CUE = "\nAnswer:"


@dataclass(frozen=True)
class Item:
    """One problem with its choices; renders as either row form."""

    subject: str
    question: str
    choices: tuple[str, ...]
    answer_index: int

    @property
    def answer(self) -> str:
        return self.choices[self.answer_index]

    @classmethod
    def from_dharma_row(cls, row: Mapping[str, Any]) -> Item:
        """Any Dharma row (ours or real benchmark rows such as MMLU's) as an item."""
        question, choices, answer = parse_row(row)
        return cls(str(row.get("subject", "")), question, tuple(choices), answer)

    def completion_row(self) -> dict[str, str]:
        return {"input": self.question + ANSWER_CUE, "output": self.answer}

    def dharma_row(self) -> dict[str, str]:
        lines = [self.question, *(f"{LETTERS[i]}. {c}" for i, c in enumerate(self.choices))]
        return {
            "input": "\n".join(lines) + ANSWER_CUE,
            "output": LETTERS[self.answer_index],
            "subject": self.subject,
        }


def row_text(row: dict[str, str]) -> str:
    """The text a row is trained and scored as: compact JSON, ``{`` … ``}``."""
    return json.dumps(row, ensure_ascii=False)
