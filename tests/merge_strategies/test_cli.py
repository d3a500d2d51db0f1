"""``mergenet merge``: list, merge (HF folder and bare file), recipe rebuild, export."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from mergenet.cli import app
from mergenet.deltas.extract import extract_delta_file
from mergenet.deltas.io import load_tensors, save_tensors
from mergenet.merge_strategies import engine, registry

from .tiny_llama import make_world

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("cliworld")
    base_dir, fts, base = make_world(root, 2, seed=3)
    deltas = []
    for j, ft in enumerate(fts):
        p = root / f"d{j}.safetensors"
        extract_delta_file(ft, base_dir, p)
        deltas.append(p)
    return root, base_dir, base, deltas


def test_list_shows_every_strategy():
    res = runner.invoke(app, ["merge", "--list", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert {d["name"] for d in data} == set(registry.names())
    ties = next(d for d in data if d["name"] == "ties")
    assert {p["name"] for p in ties["params"]} == {"density", "lambda", "normalize", "rescale"}
    res = runner.invoke(app, ["merge", "--list"])
    assert res.exit_code == 0 and "consensus" in res.output


def test_merge_hf_folder_loads_in_transformers(world, tmp_path):
    from transformers import LlamaForCausalLM

    _, base_dir, base, deltas = world
    out = tmp_path / "merged"
    args = ["merge", "--strategy", "ties", "--base", str(base_dir), "--out", str(out)]
    for d in deltas:
        args += ["--delta", str(d)]
    args += ["--weight", "0.6", "--weight", "0.4", "--param", "density=0.5"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    model = LlamaForCausalLM.from_pretrained(out)
    expected = engine.merge_state_dict("ties", base, deltas, [0.6, 0.4], {"density": 0.5})
    got = model.state_dict()
    assert all(torch.equal(got[n], expected[n]) for n in expected)
    assert (out / "recipe.json").exists()

    rebuilt = tmp_path / "rebuilt"
    res = runner.invoke(app, ["merge", "--recipe", str(out / "recipe.json"), "--out", str(rebuilt)])
    assert res.exit_code == 0, res.output
    a, b = load_tensors(out / "model.safetensors"), load_tensors(rebuilt / "model.safetensors")
    assert all(torch.equal(a[n], b[n]) for n in a)

    res = runner.invoke(app, ["merge", "--export-mergekit", str(out / "recipe.json")])
    assert res.exit_code == 0, res.output
    assert "merge_method: ties" in res.output and "density: 0.5" in res.output


def test_merge_bare_safetensors_base(world, tmp_path):
    _, _, base, deltas = world
    bare = tmp_path / "base.safetensors"
    save_tensors(base, bare)
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        ["merge", "-s", "consensus", "--base", str(bare), "-d", str(deltas[0]), "-d",
         str(deltas[1]), "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    got = load_tensors(out / "model.safetensors")
    expected = engine.merge_state_dict("consensus", base, deltas)
    assert all(torch.equal(got[n], expected[n]) for n in expected)
    assert not (out / "config.json").exists()


def test_bad_parameter_is_a_clear_error(world, tmp_path):
    _, base_dir, _, deltas = world
    res = runner.invoke(
        app,
        ["merge", "-s", "ties", "--base", str(base_dir), "-d", str(deltas[0]), "-o",
         str(tmp_path / "x"), "--param", "densty=0.5"],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "unknown parameter" in res.output and "density" in res.output
