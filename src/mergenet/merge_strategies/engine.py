"""Run a strategy over whole models: in memory (the loop's hot path) or streaming to disk.

Both paths walk the base model's tensors in order and merge one tensor at a time, so the
in-memory path allocates only the output, and the streaming path holds about one tensor ×
(k + 2) (base, k deltas, output) while reading memory-mapped safetensors and writing the
output file tensor by tensor. Randomness is per tensor: a stochastic strategy (DARE, DELLA)
gets a ``torch.Generator`` seeded from ``(seed, tensor name)`` and mutation noise one seeded
from ``(noise.seed, tensor name)``, so the two paths, any tensor order and any rebuild give
bit-identical weights.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from mergenet.deltas.io import TensorSpec, TensorWriter
from mergenet.deltas.models import ModelSource
from mergenet.deltas.sources import DeltaSource, as_source
from mergenet.merge_strategies import registry
from mergenet.merge_strategies.strategy import Strategy, tensor_generator

DeltaLike = DeltaSource | Mapping[str, torch.Tensor] | str | Path
BaseLike = ModelSource | Mapping[str, torch.Tensor]
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class Noise:
    """Mutation noise ``N(0, sigma²)`` added to every floating tensor, drawn from ``seed``."""

    seed: int
    sigma: float


@dataclass(frozen=True)
class MergePlan:
    """A resolved merge: strategy, contained params, weights and randomness."""

    strategy: Strategy
    params: dict[str, Any]
    weights: list[float]
    seed: int = 0
    noise: Noise | None = None


def plan(
    strategy: str | Strategy,
    k: int,
    weights: Sequence[float] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    noise: Noise | None = None,
) -> MergePlan:
    """Check counts and contain the params in the strategy's space (raises ValueError)."""
    s = registry.get(strategy) if isinstance(strategy, str) else strategy
    s.check_count(k)
    w = [1.0] * k if weights is None else [float(x) for x in weights]
    if len(w) != k:
        raise ValueError(f"{k} deltas but {len(w)} weights")
    return MergePlan(s, s.space.contain(params or {}), w, seed, noise)


def merge_one(
    p: MergePlan, name: str, base: torch.Tensor, deltas: Sequence[torch.Tensor | None]
) -> torch.Tensor:
    """Merge the tensor ``name``: a missing delta tensor (``None``) means "unchanged"."""
    if not base.is_floating_point():
        return base.clone()
    ds = [torch.zeros_like(base) if d is None else d for d in deltas]
    gen = tensor_generator(p.seed, name) if p.strategy.stochastic else None
    out = p.strategy.merge_tensor(base, ds, p.weights, p.params, generator=gen, name=name)
    if p.noise is not None and p.noise.sigma != 0:
        g = tensor_generator(p.noise.seed, "noise:" + name)
        noise = torch.randn(base.shape, generator=g, dtype=torch.float32)
        out = (out.float() + p.noise.sigma * noise).to(base.dtype)
    return out


def _bind_names(p: MergePlan, names: Sequence[str]) -> MergePlan:
    """Give a depth-aware strategy (``_depth.DepthStrategy``: LiNeS, layer-wise task
    arithmetic) the model's tensor names, from which it reads each tensor's depth."""
    bind = getattr(p.strategy, "bind_names", None)
    return p if bind is None else dataclasses.replace(p, strategy=bind(names))


def _base_items(base: BaseLike) -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(base, ModelSource):
        for name in base.names():
            yield name, base.get(name)
    else:
        yield from base.items()


def _check_names(base_names: set[str], sources: Sequence[DeltaSource]) -> None:
    for i, src in enumerate(sources):
        extra = sorted(set(src.names()) - base_names)
        if extra:
            raise ValueError(f"delta {i} has tensors the base does not have: {extra[:5]}")


def merge_state_dict(
    strategy: str | Strategy,
    base: BaseLike,
    deltas: Sequence[DeltaLike],
    weights: Sequence[float] | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    noise: Noise | None = None,
) -> dict[str, torch.Tensor]:
    """Merge in memory and return the merged state dict (no disk round trip)."""
    return dict(iter_merge(strategy, base, deltas, weights, params, seed=seed, noise=noise))


def iter_merge(
    strategy: str | Strategy,
    base: BaseLike,
    deltas: Sequence[DeltaLike],
    weights: Sequence[float] | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    noise: Noise | None = None,
) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, merged tensor)`` in the base's order, each merged when asked for.

    Plan, counts and names are checked before this returns, so a bad recipe fails before any
    tensor is merged. Each tensor's merge reads only the base tensor of that name, so a caller
    may overwrite base tensor ``name`` with its merge before asking for the next one (the
    evaluation worker merges into its model's own parameters that way); the tensors equal
    ``merge_state_dict``'s bit for bit.
    """
    sources = [as_source(d) for d in deltas]
    p = plan(strategy, len(sources), weights, params, seed, noise)
    names = base.names() if isinstance(base, ModelSource) else list(base)
    _check_names(set(names), sources)
    return _merged(_bind_names(p, names), base, sources)


def _merged(
    p: MergePlan, base: BaseLike, sources: Sequence[DeltaSource]
) -> Iterator[tuple[str, torch.Tensor]]:
    for n, t in _base_items(base):
        with torch.no_grad():
            out = merge_one(p, n, t, [s.get(n) for s in sources])
        yield n, out


def _copy_side_files(src: Path, dst: Path) -> None:
    for f in src.iterdir():
        if f.is_file() and f.name not in WEIGHT_FILES and not f.name.endswith(".safetensors"):
            shutil.copy2(f, dst / f.name)


def merge_to_dir(
    strategy: str | Strategy,
    base: str | Path,
    deltas: Sequence[DeltaLike],
    out_dir: str | Path,
    weights: Sequence[float] | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    noise: Noise | None = None,
    metadata: Mapping[str, str] | None = None,
    progress: bool = False,
) -> Path:
    """Stream a merge to ``out_dir/model.safetensors``.

    For an HF base folder the other files (config, tokenizer, generation config) are copied,
    so the output loads with ``from_pretrained``; for a bare safetensors base the output
    folder holds the merged ``model.safetensors`` only.
    """
    src = ModelSource(base)
    sources = [as_source(d) for d in deltas]
    p = plan(strategy, len(sources), weights, params, seed, noise)
    _check_names(set(src.names()), sources)
    p = _bind_names(p, src.names())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs: dict[str, TensorSpec] = src.specs()
    total = sum(s.nbytes for s in specs.values())
    with (
        torch.no_grad(),
        TensorWriter(out / "model.safetensors", specs, {"format": "pt", **(metadata or {})}) as w,
        _progress(progress, total, f"merging ({p.strategy.name})") as advance,
    ):
        for name, spec in specs.items():
            w.write(name, merge_one(p, name, src.get(name), [s.get(name) for s in sources]))
            advance(spec.nbytes)
    if src.is_hf_folder:
        _copy_side_files(src.path, out)
    return out


@contextlib.contextmanager
def _progress(enabled: bool, total: int, label: str) -> Iterator[Callable[[int], object]]:
    if not enabled:
        yield lambda n: None
        return

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
