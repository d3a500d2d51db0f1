"""``mergenet merge``: list strategies, merge deltas into a base, rebuild/export recipes.

Heavy imports (torch, mergekit) happen inside the command so ``mergenet --help`` stays fast.
Parameter names and defaults are mergekit's, so ``--param density=0.5`` means what
``density: 0.5`` means in a mergekit YAML.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"--param expects name=value, got {item!r}")
        name, value = item.split("=", 1)
        out[name.strip()] = yaml.safe_load(value)
    return out


def _list(as_json: bool) -> None:
    # lazy here and below: the registry and the engine import torch and mergekit
    from mergenet.merge_strategies import registry

    strategies = registry.all_strategies()
    if as_json:
        data = [
            {
                "name": s.name,
                "mergekit_method": s.mergekit_method,
                "fast_kernel": s.kernel is not None,
                "stochastic": s.stochastic,
                "uses_weights": s.uses_weights,
                "min_deltas": s.min_deltas,
                "max_deltas": s.max_deltas,
                "params": s.space.to_json(),
            }
            for s in strategies
        ]
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title="merge strategies (parameter names and defaults are mergekit's)")
    for col in ("strategy", "mergekit", "fast", "deltas", "parameters"):
        table.add_column(col)
    for s in strategies:
        count = f"{s.min_deltas}" + (
            "+"
            if s.max_deltas is None
            else ("" if s.max_deltas == s.min_deltas else f"-{s.max_deltas}")
        )
        params = "\n".join(f"{n}={d}" for n, d, _ in s.space.describe()) or "-"
        if s.uses_weights:
            params = "weight (per delta)" + ("" if params == "-" else "\n" + params)
        table.add_row(s.name, s.mergekit_method, "yes" if s.kernel else "", count, params)
    Console().print(table)


def _resolver(recipe: Any, delta_dir: Path | None) -> Callable[[str], Any]:
    def resolve(sha: str) -> Any:
        for c in recipe.contributions:
            if c.sha256 == sha and c.path:
                return c.path
        if delta_dir is not None:
            for candidate in (delta_dir / f"{sha}.safetensors", delta_dir / sha):
                if candidate.exists():
                    return candidate
        raise typer.BadParameter(
            f"cannot find contribution {sha[:16]}…: give it a path in the recipe or --delta-dir"
        )

    return resolve


def merge_command(
    list_: bool = typer.Option(False, "--list", help="List strategies and parameter spaces."),
    as_json: bool = typer.Option(False, "--json", help="With --list: machine-readable output."),
    strategy: str | None = typer.Option(None, "--strategy", "-s", help="Strategy name."),
    base: Path | None = typer.Option(None, "--base", help="Base: HF folder or safetensors file."),
    delta: list[Path] = typer.Option(
        [], "--delta", "-d", help="Delta .safetensors or PEFT LoRA folder (repeat)."
    ),
    weight: list[float] = typer.Option([], "--weight", "-w", help="Per-delta weight (repeat)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Strategy parameter name=value."),
    seed: int = typer.Option(0, "--seed", help="Seed for stochastic strategies (DARE, DELLA)."),
    recipe: Path | None = typer.Option(None, "--recipe", help="Rebuild a recipe JSON."),
    delta_dir: Path | None = typer.Option(
        None, "--delta-dir", help="Where recipe contributions live as <sha256>.safetensors."
    ),
    export_mergekit: Path | None = typer.Option(
        None, "--export-mergekit", help="Print a recipe as mergekit YAML (--out materialises)."
    ),
    mergekit_yaml: Path | None = typer.Option(
        None, "--mergekit-yaml", help="Run a mergekit YAML with mergenet's methods registered."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder."),
) -> None:
    """Merge a base with deltas using a registered strategy (see --list)."""
    modes = [list_, strategy is not None, recipe is not None, export_mergekit, mergekit_yaml]
    if sum(bool(m) for m in modes) != 1:
        raise typer.BadParameter(
            "choose one of --list, --strategy, --recipe, --export-mergekit, --mergekit-yaml"
        )
    if list_:
        _list(as_json)
        return
    try:
        if strategy is not None:
            _merge(strategy, base, delta, weight, param, seed, out)
        elif recipe is not None:
            _rebuild(recipe, base, delta_dir, out)
        elif export_mergekit is not None:
            _export(export_mergekit, base, delta_dir, out)
        elif mergekit_yaml is not None:
            from mergenet.merge_strategies.export import run_mergekit

            if out is None:
                raise typer.BadParameter("--mergekit-yaml needs --out")
            run_mergekit(mergekit_yaml, out, seed=seed)
            typer.echo(f"wrote {out}")
    except (ValueError, KeyError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(2) from None


def _merge(
    strategy: str,
    base: Path | None,
    delta: list[Path],
    weight: list[float],
    param: list[str],
    seed: int,
    out: Path | None,
) -> None:
    from mergenet.deltas.models import ModelSource
    from mergenet.merge_strategies import engine
    from mergenet.merge_strategies.recipe import Contribution, Recipe
    from mergenet.protocol.hashes import sha256_file

    if base is None or out is None or not delta:
        raise typer.BadParameter("--strategy needs --base, at least one --delta and --out")
    weights = list(weight) or [1.0] * len(delta)
    if len(weights) != len(delta):
        raise typer.BadParameter(f"{len(delta)} --delta but {len(weights)} --weight")
    p = engine.plan(strategy, len(delta), weights, _parse_params(param), seed)
    engine.merge_to_dir(p.strategy, base, delta, out, weights, p.params, seed=seed, progress=True)
    contributions = [
        Contribution(
            sha256=sha256_file(d / "adapter_model.safetensors" if d.is_dir() else d),
            weight=w,
            path=str(d.resolve()),
        )
        for d, w in zip(delta, weights, strict=True)
    ]
    Recipe(
        parent=ModelSource(base).sha256(),
        strategy=p.strategy.name,
        params=p.params,
        contributions=contributions,
        seed=seed,
        parent_path=str(Path(base).resolve()),
    ).save(Path(out) / "recipe.json")
    typer.echo(f"wrote {out} ({p.strategy.name}, {len(delta)} deltas, params {p.params})")


def _rebuild(
    recipe_path: Path, base: Path | None, delta_dir: Path | None, out: Path | None
) -> None:
    from mergenet.merge_strategies.recipe import Recipe, build_to_dir

    if out is None:
        raise typer.BadParameter("--recipe needs --out")
    r = Recipe.load(recipe_path)
    base_path = base or (Path(r.parent_path) if r.parent_path else None)
    if base_path is None:
        raise typer.BadParameter("the recipe has no parent_path: pass --base")
    build_to_dir(r, base_path, out, _resolver(r, delta_dir), progress=True)
    typer.echo(f"rebuilt {r.sha256[:16]}… into {out}")


def _export(recipe_path: Path, base: Path | None, delta_dir: Path | None, out: Path | None) -> None:
    from mergenet.merge_strategies.export import export_recipe, mergekit_config, to_yaml
    from mergenet.merge_strategies.recipe import Recipe

    r = Recipe.load(recipe_path)
    base_path = base or (Path(r.parent_path) if r.parent_path else None)
    if base_path is None:
        raise typer.BadParameter("the recipe has no parent_path: pass --base")
    if out is None:
        models = [f"models/{c.sha256[:16]}" for c in r.contributions]
        typer.echo(to_yaml(mergekit_config(r, str(base_path), models)), nl=False)
        typer.echo(
            "# model paths are relative: run with --out DIR to materialise base+delta folders",
            err=True,
        )
        return
    path = export_recipe(r, base_path, out, _resolver(r, delta_dir))
    typer.echo(path.read_text(), nl=False)
    typer.echo(f"# wrote {path}; run: mergenet merge --mergekit-yaml {path} --out DIR", err=True)
