"""The world's tokenizer: byte-level BPE trained with ``tokenizers`` on the world's rows.

Two pre-tokenizer rules come before the usual byte-level split: ``{`` and ``}`` are isolated
so each is always one token and every row starts and ends on a token boundary (rows pack
back to back with no separator), and the two-character JSON escape ``\\n`` is isolated so the
letter after an escaped newline starts a new word (``\\nAnswer`` is ``\\n`` + ``Answer``).
Digits are split one by one (as Llama's tokenizer does), which makes arithmetic learnable
by a small model: every number is spelled in the same ten tokens.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PIECES = r"\\n|[{}]|'(?:s|t|re|ve|m|ll|d)| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}{}\\]+|\s+(?!\S)|\s+"
"""Pre-token pieces: escaped newline, braces, words, single digits, punctuation, spaces."""
PAD = "<|pad|>"


def train_tokenizer(texts: Iterable[str], *, vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE on ``texts``; deterministic for the same texts and size."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PIECES), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, out_dir: Path) -> PreTrainedTokenizerFast:
    """Save as an ordinary transformers tokenizer folder (loads with ``AutoTokenizer``)."""
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD)
    fast.save_pretrained(out_dir)
    return fast
