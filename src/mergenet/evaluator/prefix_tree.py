"""Token prefix trees: sequences that share a prefix share its tokens in one forward pass.

A question's four choices share their prompt; the answer-loss row of an item is the correct
choice's row again; the Dharma letter prompt begins with the same ``{"input": "<question>``
tokens. Scoring every sequence separately (as lm-eval does per request, and as mergenet's
first packed scorer did) pays for those shared tokens again and again. Here the sequences are
sorted, inserted into a token trie, and the trie is laid out in preorder: each node is one
token at position ``depth`` that attends to exactly its ancestors and itself. So a node's
logits are those the model computes for that token in every sequence through it, and each
sequence's log-likelihood is the sum of its path's per-node log-probabilities.

Invariant (what makes the mask a two-comparison test): in preorder, ``j`` is an ancestor of
``i`` (or ``i`` itself) iff ``j <= i < end[j]``, with ``end[j]`` one past ``j``'s subtree.
Sorted insertion yields preorder because a later sequence never re-enters a subtree that an
earlier, smaller sequence has left.

A tree is cut when adding a sequence would take it past ``max_tokens`` nodes, so attention
stays cheap (quadratic only in a short tree, never in the whole request set); such a sequence
starts a new tree and pays its shared prefix once more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


@dataclass
class PrefixTree:
    """One tree of tokens in preorder, ready to be one row of a forward batch."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    """Index of each node's parent in this tree; -1 for a root."""
    depths: list[int] = field(default_factory=list)
    paths: dict[int, list[int]] = field(default_factory=dict)
    """Caller's sequence index → the nodes of its path, root first."""

    def __len__(self) -> int:
        return len(self.tokens)

    def subtree_ends(self) -> list[int]:
        """``end[j]``: one past the last node of ``j``'s subtree (preorder)."""
        end = list(range(1, len(self.tokens) + 1))
        for j in range(len(self.tokens) - 1, -1, -1):
            p = self.parents[j]
            if p >= 0 and end[j] > end[p]:
                end[p] = end[j]
        return end

    def attention_mask(self, length: int) -> torch.Tensor:
        """Boolean ``[length, length]``: a node sees its ancestors and itself.

        Positions past the tree (padding up to ``length``) see only themselves, so no row of
        the attention is empty; they are never scored.
        """
        n = len(self.tokens)
        idx = torch.arange(length)
        end = torch.cat([torch.tensor(self.subtree_ends()), idx[n:] + 1])
        return (idx[None, :] <= idx[:, None]) & (idx[:, None] < end[None, :])


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def build_trees(
    sequences: Sequence[Sequence[int]], *, max_tokens: int, share: bool = True
) -> list[PrefixTree]:
    """Trees of at most ``max_tokens`` nodes holding every sequence (a longer one alone).

    ``share=False`` gives each sequence its own chain (plain block-diagonal packing), for
    models that accept only that (a Petals swarm splits packs at position restarts).
    """
    order = sorted(range(len(sequences)), key=lambda k: tuple(sequences[k])) if share else None
    trees: list[PrefixTree] = []
    tree = PrefixTree()
    prev: Sequence[int] = ()
    prev_path: list[int] = []
    for key in order if order is not None else range(len(sequences)):
        seq = sequences[key]
        shared = min(_common_prefix(prev, seq), len(prev_path)) if share else 0
        if tree.tokens and len(tree) + len(seq) - shared > max_tokens:
            trees.append(tree)
            tree, shared, prev_path = PrefixTree(), 0, []
        path = prev_path[:shared]
        first, added = len(tree.tokens), len(seq) - shared
        if added:  # a chain: each new node's parent is the node before it
            tree.parents.append(path[-1] if path else -1)
            tree.parents.extend(range(first, first + added - 1))
            tree.tokens.extend(seq[shared:])
            tree.depths.extend(range(shared, len(seq)))
            path.extend(range(first, first + added))
        tree.paths[key] = path
        prev, prev_path = seq, path
    if tree.tokens:
        trees.append(tree)
    return trees


def to_batch(
    trees: Sequence[PrefixTree], *, additive: torch.dtype | None = None
) -> dict[str, torch.Tensor]:
    """Model inputs for trees side by side, padded to the longest (padding is never scored).

    The ``[batch, 1, length, length]`` mask is built in one broadcast from the trees' subtree
    ends: boolean (a node sees its ancestors and itself), or with ``additive`` a float mask of
    that dtype (0 where allowed, the dtype's minimum elsewhere) for models that add it to the
    attention scores.
    """
    length = max(len(t) for t in trees)
    ids = torch.zeros(len(trees), length, dtype=torch.long)
    pos = torch.zeros(len(trees), length, dtype=torch.long)
    idx = torch.arange(length)
    end = (idx + 1).repeat(len(trees), 1)  # padding sees only itself
    for b, t in enumerate(trees):
        ids[b, : len(t)] = torch.tensor(t.tokens)
        pos[b, : len(t)] = torch.tensor(t.depths)
        end[b, : len(t)] = torch.tensor(t.subtree_ends())
    query = idx[None, :, None]
    allowed = (idx[None, None, :] <= query) & (query < end[:, None, :])
    if additive is None:
        return {"input_ids": ids, "position_ids": pos, "attention_mask": allowed[:, None]}
    mask = torch.zeros(allowed.shape, dtype=additive).masked_fill_(
        ~allowed, torch.finfo(additive).min
    )
    return {"input_ids": ids, "position_ids": pos, "attention_mask": mask[:, None]}
