"""Recipes: everything needed to rebuild a core model version bit for bit.

A recipe names the parent model by its canonical state-dict sha256, the strategy and its
(contained) parameters, the contributions by the sha256 of their delta files with their
weights, the seed for stochastic strategies and optional mutation noise ``(seed, σ)``.
``build`` merges in memory through the same per-tensor path as every other merge, so
building twice — or streaming to disk with ``build_to_dir`` — gives identical weights.
Optional ``parent_path`` / contribution ``path`` fields are location hints for the CLI and
are not part of the recipe's identity (``Recipe.sha256``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, Field

from mergenet.deltas.hashing import state_dict_sha256
from mergenet.deltas.models import ModelSource
from mergenet.deltas.sources import DeltaSource, as_source
from mergenet.merge_strategies import engine, registry

FORMAT = "mergenet-recipe/1"


class Contribution(BaseModel):
    sha256: str
    weight: float = 1.0
    path: str | None = Field(default=None, description="location hint, not part of identity")


class NoiseSpec(BaseModel):
    seed: int
    sigma: float = Field(ge=0)


class Recipe(BaseModel):
    format: str = FORMAT
    parent: str = Field(description="canonical state-dict sha256 of the parent model")
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)
    contributions: list[Contribution]
    seed: int = 0
    noise: NoiseSpec | None = None
    parent_path: str | None = Field(default=None, description="location hint")

    def canonical(self) -> Recipe:
        """Params filled with defaults and contained in the strategy's space."""
        strategy = registry.get(self.strategy)
        strategy.check_count(len(self.contributions))
        return self.model_copy(update={"params": strategy.space.contain(self.params)})

    def identity(self) -> dict[str, Any]:
        c = self.canonical()
        return {
            "format": c.format,
            "parent": c.parent,
            "strategy": c.strategy,
            "params": c.params,
            "contributions": [{"sha256": x.sha256, "weight": x.weight} for x in c.contributions],
            "seed": c.seed,
            "noise": c.noise.model_dump() if c.noise else None,
        }

    @property
    def sha256(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def weights(self) -> list[float]:
        return [c.weight for c in self.contributions]

    def engine_noise(self) -> engine.Noise | None:
        return engine.Noise(self.noise.seed, self.noise.sigma) if self.noise else None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2, exclude_none=True) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        return cls.model_validate_json(Path(path).read_text())


Resolver = Callable[[str], DeltaSource | Mapping[str, torch.Tensor] | str | Path]


def _resolve_all(recipe: Recipe, resolve: Resolver | None) -> list[Any]:
    out = []
    for c in recipe.contributions:
        if resolve is not None:
            out.append(resolve(c.sha256))
        elif c.path is not None:
            out.append(c.path)
        else:
            raise ValueError(f"no location for contribution {c.sha256[:16]}…: pass a resolver")
    return [as_source(d) for d in out]


def _check_parent(recipe: Recipe, base: ModelSource | Mapping[str, torch.Tensor]) -> None:
    actual = base.sha256() if isinstance(base, ModelSource) else state_dict_sha256(base)
    if actual != recipe.parent:
        raise ValueError(
            f"the base model's hash {actual[:16]}… is not the recipe's parent {recipe.parent[:16]}…"
        )


def build(
    recipe: Recipe,
    base: ModelSource | Mapping[str, torch.Tensor],
    resolve: Resolver | None = None,
    *,
    check_parent: bool = True,
) -> dict[str, torch.Tensor]:
    """Rebuild the recipe's weights in memory."""
    return dict(iter_build(recipe, base, resolve, check_parent=check_parent))


def iter_build(
    recipe: Recipe,
    base: ModelSource | Mapping[str, torch.Tensor],
    resolve: Resolver | None = None,
    *,
    check_parent: bool = True,
) -> Iterator[tuple[str, torch.Tensor]]:
    """The recipe's weights one tensor at a time (``engine.iter_merge``): what ``build``
    returns, without ever holding more than one merged tensor."""
    if check_parent:
        _check_parent(recipe, base)
    c = recipe.canonical()
    return engine.iter_merge(
        c.strategy,
        base,
        _resolve_all(c, resolve),
        c.weights,
        c.params,
        seed=c.seed,
        noise=c.engine_noise(),
    )


def build_to_dir(
    recipe: Recipe,
    base: str | Path,
    out_dir: str | Path,
    resolve: Resolver | None = None,
    *,
    check_parent: bool = True,
    progress: bool = False,
) -> Path:
    """Rebuild the recipe into a folder (streaming), with the recipe saved beside the weights."""
    if check_parent:
        _check_parent(recipe, ModelSource(base))
    c = recipe.canonical()
    out = engine.merge_to_dir(
        c.strategy,
        base,
        _resolve_all(c, resolve),
        out_dir,
        c.weights,
        c.params,
        seed=c.seed,
        noise=c.engine_noise(),
        metadata={"mergenet_recipe": c.sha256},
        progress=progress,
    )
    c.save(Path(out) / "recipe.json")
    return out
