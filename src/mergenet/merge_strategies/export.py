"""Export recipes as mergekit YAML, and run such YAML with mergenet's methods registered.

mergekit merges whole models, so each contribution is materialised as the HF folder
``base + δ`` (streamed tensor by tensor); the YAML then lists the base (for base-aware
methods) and those folders with each contribution's ``weight``, and the strategy's contained
parameters at top level — names and values exactly as mergekit reads them. Mutation noise
has no mergekit equivalent and is refused unless the caller drops it explicitly; stochastic
strategies (DARE, DELLA) export the same merge but mergekit draws its own random masks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from mergenet.deltas.io import TensorWriter
from mergenet.deltas.models import ModelSource
from mergenet.deltas.sources import as_source
from mergenet.merge_strategies import registry
from mergenet.merge_strategies.engine import DeltaLike, _copy_side_files
from mergenet.merge_strategies.recipe import Recipe, Resolver, _resolve_all

_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}


def mergekit_config(
    recipe: Recipe,
    base_path: str,
    model_paths: Sequence[str],
    dtype: str = "float32",
    *,
    drop_noise: bool = False,
) -> dict[str, Any]:
    """The mergekit configuration (a plain dict) for ``recipe``."""
    if recipe.noise is not None and recipe.noise.sigma != 0 and not drop_noise:
        raise ValueError(
            "the recipe adds mutation noise, which mergekit cannot express; "
            "export with drop_noise=True to get the noise-free merge"
        )
    c = recipe.canonical()
    strategy = registry.get(c.strategy)
    _check_exportable(strategy.name, strategy.mergekit_method)
    if len(model_paths) != len(c.contributions):
        raise ValueError(f"{len(c.contributions)} contributions but {len(model_paths)} model paths")
    models = []
    for path, contribution in zip(model_paths, c.contributions, strict=True):
        entry: dict[str, Any] = {"model": str(path)}
        if strategy.uses_weights:
            entry["parameters"] = {"weight": float(contribution.weight)}
        models.append(entry)
    config: dict[str, Any] = {"merge_method": strategy.mergekit_method}
    if strategy.base_input:
        config["base_model"] = str(base_path)
    config["models"] = models
    params = {**strategy.fixed, **c.params}
    if params:
        config["parameters"] = params
    config["dtype"] = dtype
    return config


def _check_exportable(name: str, method: str) -> None:
    """Refuse a strategy whose mergekit method mergekit does not know (``lines`` and
    ``task_arithmetic_layerwise`` have none of the same meaning), instead of writing a YAML
    that mergekit cannot run."""
    from mergekit.merge_methods import registered_methods

    from mergenet.merge_strategies.mergekit_plugin import ensure_registered

    ensure_registered()
    if method not in {m.spec.name for m in registered_methods()}:
        raise ValueError(
            f"strategy {name!r} has no mergekit method (its name {method!r} is mergenet's "
            "own), so it cannot be exported as a mergekit configuration; merge it with "
            "`mergenet merge` instead"
        )


def to_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False)


def materialize(base: str | Path, delta: DeltaLike, out_dir: str | Path) -> Path:
    """Write the HF folder ``base + δ`` (the model mergekit sees for one contribution)."""
    src = ModelSource(base)
    d = as_source(delta)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs = src.specs()
    with torch.no_grad(), TensorWriter(out / "model.safetensors", specs, {"format": "pt"}) as w:
        for name in specs:
            b = src.get(name)
            t = d.get(name)
            if t is None or not b.is_floating_point():
                w.write(name, b)
            else:
                w.write(name, (b.float() + t.float()).to(b.dtype))
    if src.is_hf_folder:
        _copy_side_files(src.path, out)
    return out


def export_recipe(
    recipe: Recipe,
    base: str | Path,
    out_dir: str | Path,
    resolve: Resolver | None = None,
    *,
    drop_noise: bool = False,
) -> Path:
    """Materialise every contribution under ``out_dir/models`` and write ``mergekit.yaml``."""
    src = ModelSource(base)
    if not src.is_hf_folder:
        raise ValueError("mergekit needs an HF model folder (config.json) as the base")
    out = Path(out_dir)
    sources = _resolve_all(recipe, resolve)
    paths = []
    for contribution, source in zip(recipe.contributions, sources, strict=True):
        folder = out / "models" / contribution.sha256[:16]
        if not (folder / "model.safetensors").exists():
            materialize(base, source, folder)
        paths.append(str(folder.resolve()))
    spec = src.specs()
    dtype = _DTYPE.get(next(iter(spec.values())).dtype, "float32") if spec else "float32"
    config = mergekit_config(recipe, str(Path(base).resolve()), paths, dtype, drop_noise=drop_noise)
    (out / "mergekit.yaml").write_text(to_yaml(config))
    return out / "mergekit.yaml"


def run_mergekit(
    config: str | Path | dict[str, Any], out_dir: str | Path, seed: int | None = None
) -> Path:
    """Run mergekit's own ``run_merge`` on a YAML (file or dict), with mergenet's methods known."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from mergenet.merge_strategies.mergekit_plugin import ensure_registered

    ensure_registered()
    data = yaml.safe_load(Path(config).read_text()) if not isinstance(config, dict) else config
    options = MergeOptions(
        copy_tokenizer=False,
        write_model_card=False,
        random_seed=seed,
        quiet=True,
        lazy_unpickle=False,
    )
    run_merge(MergeConfiguration.model_validate(data), str(out_dir), options=options)
    return Path(out_dir)
