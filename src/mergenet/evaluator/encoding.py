"""How an item becomes tokens, the same way for training and for scoring.

A completion row is encoded as two pieces, the prompt (``{"input": "…\\nAnswer:", "output": "``)
and the continuation (the JSON-escaped answer and ``"}``), concatenated. Encoding the two
pieces separately (as lm-eval does for context and continuation) keeps the boundary where
the answer starts exact whatever the answer's first character is; training uses the same
function so a model never sees a row tokenised differently from how it is scored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from mergenet.evaluator.items import LETTERS, Item, row_text


class TextTokenizer(Protocol):
    def __call__(self, text: list[str], add_special_tokens: bool = ...) -> dict: ...

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]: ...


def _escaped(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def completion_prompt(item: Item) -> str:
    text = row_text(item.completion_row())
    return text[: len(text) - len(_escaped(item.answer)) - 2]


def continuation(choice: str) -> str:
    return _escaped(choice) + '"}'


def letter_prompt(item: Item) -> str:
    """The Dharma row's text up to the answer letter: ``{"input": "…", "output": "``."""
    row = item.dharma_row()
    return row_text({"input": row["input"], "output": ""})[:-2]


def encode_texts(tokenizer: TextTokenizer, texts: Sequence[str]) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def encode_completions(
    tokenizer: TextTokenizer, items: Sequence[Item], choice_index: Sequence[int] | None = None
) -> list[tuple[list[int], int]]:
    """(ids, answer_start) per item: the prompt, then choice ``choice_index[i]``.

    ``choice_index`` defaults to each item's correct answer.
    """
    if choice_index is None:
        choice_index = [it.answer_index for it in items]
    texts = [completion_prompt(it) for it in items]
    unique = list(dict.fromkeys(texts))  # a question's choices share one prompt: encode it once
    encoded = dict(zip(unique, encode_texts(tokenizer, unique), strict=True))
    prompts = [encoded[t] for t in texts]
    conts = encode_texts(
        tokenizer, [continuation(it.choices[c]) for it, c in zip(items, choice_index, strict=True)]
    )
    return [(p + c, len(p)) for p, c in zip(prompts, conts, strict=True)]


def letter_token_ids(tokenizer: TextTokenizer) -> list[int]:
    """Token ids of the bare answer letters ``A``…``D`` as they follow ``"output": "``."""
    ids = encode_texts(tokenizer, list(LETTERS))
    if any(len(i) != 1 for i in ids):
        raise ValueError("the tokenizer must encode each answer letter A-D as one token")
    return [i[0] for i in ids]
