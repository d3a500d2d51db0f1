"""One forward pass over a batch of prefix trees, log-probabilities only where they are read.

A causal LM's ``forward`` projects every position onto the vocabulary; the tree scorer reads
the log-probability of a node's token at its parent's position only (never at a leaf, which
predicts nothing) and, for letter accuracy, a few logits at some rows' last positions. So the
decoder runs alone (``model.base_model``), the hidden states of those positions are gathered,
and the output embedding and log-softmax run on them alone. On the world's base (2.56M
parameters, vocabulary 2,048, hidden 192) the output layer is a fifth of the linear work per
position and the log-softmax's full-vocabulary pass more; on the 1,280 benchmark requests 1,280
of 12,074 tree nodes are leaves, and a call that needs only the answers'
log-probabilities (``totals=False`` in ``scoring.score_sequences``) reads 6,195.

Invariant (what keeps this equal to ``model(...).logits``): the fast path is taken only for
families whose causal-LM head is exactly ``output_embeddings(last_hidden_state)`` (plus
Gemma-2's final soft cap, applied here as its ``forward`` does); any other model takes its
own ``forward`` and its logits are gathered afterwards. The KV cache is never built
(``use_cache=False``: the world's config asks for one, and filling it is a copy per layer).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

HEAD_IS_PLAIN_PROJECTION = frozenset({"llama", "mistral", "qwen2", "qwen3", "gpt_neox", "gemma2"})
"""Model types whose logits are the output embedding of the decoder's last hidden state
(Gemma-2 then soft-caps them: ``cap * tanh(logits / cap)``, applied in ``_head``)."""


def _head(model: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    head = model.get_output_embeddings()
    assert head is not None
    logits = head(hidden)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def _selected_logits(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], rows: torch.Tensor
) -> torch.Tensor:
    """Logits ``[len(rows), vocab]`` at flat positions ``rows`` (``b * length + i``)."""
    if isinstance(model, PreTrainedModel):
        if model.config.model_type in HEAD_IS_PLAIN_PROJECTION:
            out = model.base_model(**batch, use_cache=False)
            hidden = out.last_hidden_state
            return _head(model, hidden.reshape(-1, hidden.shape[-1])[rows])
        logits = model(**batch, use_cache=False).logits
    else:
        logits = model(**batch).logits
    return logits.reshape(-1, logits.shape[-1])[rows].float()


def tree_logprobs(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    parent_rows: torch.Tensor,
    tokens: torch.Tensor,
    last_rows: torch.Tensor,
    keep: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``log p(tokens[k] | position parent_rows[k])`` and, if ``keep``, logits at ``last_rows``.

    Rows are flat positions in the ``[batch, length]`` layout of ``batch``'s ``input_ids``.
    """
    n = parent_rows.numel()
    rows = torch.cat([parent_rows, last_rows]) if keep is not None else parent_rows
    logits = _selected_logits(model, batch, rows)
    scored = logits[:n]
    lp = scored.gather(1, tokens[:, None])[:, 0] - torch.logsumexp(scored, dim=-1)
    last = logits[n:][:, keep] if keep is not None else None
    return lp, last
