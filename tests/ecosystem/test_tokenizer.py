"""The world's tokenizer: braces and answer letters are single tokens; rows pack cleanly."""

from __future__ import annotations

import pytest

from mergenet.ecosystem.rows import draw_items
from mergenet.ecosystem.tasks import TASKS
from mergenet.ecosystem.tokenizer import save_tokenizer, train_tokenizer
from mergenet.evaluator.items import row_text


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = []
    for task in TASKS.values():
        for it in draw_items(task, n=150, seed=1, split="train", distinct=False):
            dharma = it.dharma_row()
            texts += [row_text(it.completion_row()), row_text(dharma)]
            texts.append(dharma["input"] + " " + dharma["output"])
    tok = train_tokenizer(texts, vocab_size=1024)
    return save_tokenizer(tok, tmp_path_factory.mktemp("tok"))


def _rows():
    for task in TASKS.values():
        for it in draw_items(task, n=5, seed=2, split="heldout"):
            yield it.completion_row()
            yield it.dharma_row()


def test_every_row_starts_and_ends_with_a_brace_token(tokenizer) -> None:
    open_id = tokenizer.convert_tokens_to_ids("{")
    close_id = tokenizer.convert_tokens_to_ids("}")
    for row in _rows():
        ids = tokenizer(row_text(row), add_special_tokens=False)["input_ids"]
        assert ids[0] == open_id and ids[-1] == close_id, tokenizer.convert_ids_to_tokens(ids)


def test_packed_rows_tokenize_as_the_concatenation_of_rows(tokenizer) -> None:
    """Back-to-back rows need no separator: the boundary ``}{`` never merges."""
    rows = [row_text(r) for r in _rows()]
    alone = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in rows]
    packed = tokenizer("".join(rows), add_special_tokens=False)["input_ids"]
    assert packed == [i for ids in alone for i in ids]


@pytest.mark.parametrize("text", ["{", "}", "A", "B", "C", "D", " A", " B", " C", " D"])
def test_single_tokens(tokenizer, text: str) -> None:
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) == 1


def test_digits_are_spelled_one_by_one_and_text_round_trips(tokenizer) -> None:
    text = '{"input": "What is 4711+9?\\nAnswer:", "output": "4720"}'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert [t for t in tokens if t.isdigit()][-4:] == ["4", "7", "2", "0"]
    assert "\\n" in tokens  # the JSON escape is one token, so "Answer" starts a word
    assert tokenizer.decode(ids) == text


def test_training_is_deterministic() -> None:
    texts = [
        row_text(it.completion_row())
        for it in draw_items(TASKS["add"], n=300, seed=0, split="train", distinct=False)
    ]
    a = train_tokenizer(texts, vocab_size=400).to_str()
    b = train_tokenizer(texts, vocab_size=400).to_str()
    assert a == b
