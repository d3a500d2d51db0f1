"""Loading a causal LM and its tokenizer from a folder or, when online, the Hugging Face hub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def load_causal_lm(
    name_or_path: str | Path, *, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) in eval mode.

    A local folder is used as is; anything else goes through the hub (``from_pretrained``
    with a hub id), which is the path a user with internet takes.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own rich progress is shown instead
    model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    return model, tokenizer
