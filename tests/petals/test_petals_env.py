"""The Petals environment and the boundary between it and the main one."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mergenet.petals.env import petals_environ, src_root
from mergenet.petals.views import UnsupportedConfig, link_view, petals_config

PETALS_SIDE = src_root() / "mergenet" / "petals" / "side"
SHAPE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "rms_norm_eps",
    "hidden_act",
    "tie_word_embeddings",
    "attention_bias",
)


def probe(petals_py: Path, folder: Path) -> dict:
    """How transformers 4.34 (the Petals side) reads ``folder``'s config."""
    out = subprocess.run(
        [str(petals_py), "-m", "mergenet.petals.side.config_probe", str(folder)],
        capture_output=True,
        text=True,
        env=petals_environ(),
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout)


def test_the_petals_side_imports_nothing_else_of_mergenet() -> None:
    offenders = []
    # ``python -m mergenet.petals.side.X`` also runs the two package roots above it.
    roots = [PETALS_SIDE.parent / "__init__.py", PETALS_SIDE.parent.parent / "__init__.py"]
    for path in [*PETALS_SIDE.glob("*.py"), *roots]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.split(".")[0] == "mergenet" and not n.startswith("mergenet.petals.side")
            ]
    assert not offenders


def test_the_main_side_imports_nothing_of_petals() -> None:
    code = (
        "import sys\n"
        "import mergenet.cli, mergenet.petals.client, mergenet.petals.candidates\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'petals', 'hivemind'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_petals_environment_has_the_pinned_versions(petals_py: Path) -> None:
    code = (
        "import json, importlib.metadata as m, pathlib, hivemind\n"
        "names = ['petals', 'hivemind', 'transformers', 'tokenizers', 'peft', 'torch', 'numpy']\n"
        "p2pd = pathlib.Path(hivemind.__file__).parent / 'hivemind_cli' / 'p2pd'\n"
        "v = {n: m.version(n) for n in names}\n"
        "print(json.dumps({**v, 'p2pd': p2pd.read_bytes()[:4].hex()}))"
    )
    out = subprocess.run(
        [str(petals_py), "-c", code], capture_output=True, text=True, env=petals_environ()
    )
    assert out.returncode == 0, out.stderr[-2000:]
    v = json.loads(out.stdout)
    assert (v["petals"], v["hivemind"], v["transformers"]) == ("2.2.0.post1", "1.1.11", "4.34.1")
    assert (v["tokenizers"], v["peft"], v["torch"].split("+")[0]) == ("0.14.1", "0.5.0", "2.13.0")
    assert int(v["numpy"].split(".")[0]) < 2
    assert v["p2pd"] == "7f454c46", "p2pd must be this platform's ELF daemon (from hivemind 1.1.12)"


def test_the_world_config_reads_the_same_under_transformers_5_and_4_34(
    petals_py: Path, model_dir: Path, tmp_path: Path
) -> None:
    from transformers import AutoConfig

    mine = AutoConfig.from_pretrained(model_dir)
    theirs_raw = probe(petals_py, model_dir)
    theirs_view = probe(petals_py, link_view(model_dir, tmp_path / "view"))
    assert theirs_view["transformers"] == "4.34.1"
    assert theirs_raw["config_class"] == theirs_view["config_class"] == "LlamaConfig"
    for f in SHAPE_FIELDS:
        assert theirs_raw[f] == theirs_view[f] == getattr(mine, f), f
    rope = mine.rope_parameters
    assert rope["rope_type"] == "default"
    assert theirs_view["rope_theta"] == rope["rope_theta"]
    assert theirs_view["rope_scaling"] is None


def test_a_non_default_rope_base_reaches_the_petals_side(petals_py: Path, tmp_path: Path) -> None:
    """transformers 4.34 ignores ``rope_parameters``; the view translates it."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    src = tmp_path / "src"
    LlamaConfig(
        hidden_size=64, num_attention_heads=4, num_hidden_layers=2, rope_theta=500000.0
    ).save_pretrained(src)
    save_file({"x": __import__("torch").zeros(1)}, str(src / "model.safetensors"))
    assert probe(petals_py, link_view(src, tmp_path / "view"))["rope_theta"] == 500000.0
    # the server launcher does the same on its own for a raw folder
    code = (
        "import sys; from mergenet.petals.side.compat import readable_folder\n"
        "print(readable_folder(sys.argv[1]))"
    )
    out = subprocess.run(
        [str(petals_py), "-c", code, str(src)], capture_output=True, text=True, env=petals_environ()
    )
    served = Path(out.stdout.strip())
    try:
        assert served != src and probe(petals_py, served)["rope_theta"] == 500000.0
    finally:
        shutil.rmtree(served, ignore_errors=True)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"model_type": "gpt2"}, "serves llama"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 2}}, "yarn"),
        ({"head_dim": 32}, "head_dim"),
    ],
)
def test_configs_the_petals_side_would_misread_are_refused(patch: dict, message: str) -> None:
    base = {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}
    with pytest.raises(UnsupportedConfig, match=message):
        petals_config({**base, **patch})
