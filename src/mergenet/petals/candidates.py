"""Candidates across peers: each peer builds and serves only its own slice of a candidate.

A candidate is a ``Recipe`` (parent + deltas + strategy). The merge engine works tensor by
tensor with per-tensor randomness seeded by ``(seed, tensor name)``, so merging any subset
of tensors gives exactly those tensors of the full merge. A server peer therefore reads its
block range of the parent and of each delta, merges it, writes a Petals view holding only
those blocks and serves them under a DHT prefix unique to the candidate; the client (the
scorer) does the same for the tensors outside the blocks (embeddings, final norm, LM
head). No process, and so no machine, ever holds the whole candidate — the path to models
larger than any one peer. The recipe's parent hash is not re-checked here (that needs a read
of the whole parent); the coordinator checks it when it builds the recipe.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from mergenet.deltas.models import ModelSource
from mergenet.deltas.sources import DeltaSource, as_source
from mergenet.merge_strategies import engine
from mergenet.merge_strategies.recipe import Recipe
from mergenet.petals.swarm import Peer, start_servers
from mergenet.petals.views import block_names, client_names, tensor_view


def candidate_prefix(recipe: Recipe) -> str:
    """A DHT prefix unique to the candidate: its blocks never mix with another model's."""
    return f"cand-{recipe.sha256[:16]}"


class _SubsetBase(Mapping[str, torch.Tensor]):
    """The parent's tensors in ``names``, read one at a time on access."""

    def __init__(self, source: ModelSource, names: list[str]):
        self.source, self.names = source, names

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.names:
            raise KeyError(name)
        return self.source.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class _SubsetDelta:
    """A delta restricted to ``names`` (the engine checks delta names against the base)."""

    def __init__(self, inner: DeltaSource, names: set[str]):
        self.inner, self.keep = inner, names

    def names(self) -> list[str]:
        return [n for n in self.inner.names() if n in self.keep]

    def get(self, name: str) -> torch.Tensor | None:
        return self.inner.get(name) if name in self.keep else None


@dataclass(frozen=True)
class Part:
    """A slice of a candidate: blocks ``[start, end)``, or the client's tensors (``None``)."""

    blocks: tuple[int, int] | None

    def names(self, all_names: list[str]) -> list[str]:
        if self.blocks is None:
            return client_names(all_names)
        return block_names(all_names, *self.blocks)

    @property
    def label(self) -> str:
        return "client" if self.blocks is None else f"blocks-{self.blocks[0]}-{self.blocks[1]}"


def merge_part(recipe: Recipe, parent_dir: Path, part: Part) -> dict[str, torch.Tensor]:
    """The candidate's tensors of ``part`` only (contributions located by their ``path``)."""
    parent = ModelSource(parent_dir)
    names = part.names(parent.names())
    if not names:
        raise ValueError(f"{part.label}: the parent has no such tensors")
    keep = set(names)
    c = recipe.canonical()
    missing = [x.sha256[:16] for x in c.contributions if x.path is None]
    if missing:
        raise ValueError(f"contributions {missing} have no path to read them from")
    deltas = [_SubsetDelta(as_source(x.path), keep) for x in c.contributions if x.path is not None]
    return engine.merge_state_dict(
        c.strategy,
        _SubsetBase(parent, names),
        deltas,
        c.weights,
        c.params,
        seed=c.seed,
        noise=c.engine_noise(),
    )


def materialise_part(recipe: Recipe, parent_dir: Path, part: Part, out_dir: Path) -> Path:
    """Write a Petals view of one part of the candidate (config + that part's tensors)."""
    return tensor_view(Path(parent_dir), Path(out_dir), merge_part(recipe, parent_dir, part))


def serve_candidate(
    recipe: Recipe,
    parent_dir: Path,
    ranges: list[tuple[int, int]],
    initial_peers: list[str],
    work_dir: Path,
    timeout: float = 180.0,
) -> tuple[Path, list[Peer]]:
    """Materialise and serve each block range as its own peer; returns the client's view.

    Here the peers are processes on one machine, each given its own folder; across machines
    each peer runs ``materialise_part`` for its range and starts its server the same way.
    """
    prefix = candidate_prefix(recipe)
    root = Path(work_dir) / prefix
    parts = [
        (materialise_part(recipe, parent_dir, Part(r), root / Part(r).label), r) for r in ranges
    ]
    client = materialise_part(recipe, parent_dir, Part(None), root / "client")
    peers = start_servers(parts, prefix, initial_peers, root / "logs", timeout)
    return client, peers
