"""Issue 19: the PEFT adapter config schema. A config that is a JSON list, ``r: 0`` and an
invalid regex got a 500 before; ``(.|.|.)*Z`` as a ``rank_pattern`` key pinned a core; a
LoRA whose ``target_modules`` name nothing in the parent was accepted. Each is now an
``InvalidInput`` with a message, and no user text is compiled as a regular expression."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from mergenet.deltas.adapter_config import MAX_LORA_RANK, parse_adapter_config, pattern_value
from mergenet.deltas.errors import DeltaTooLarge, DeltaValidationError
from mergenet.deltas.lora import LoraDelta
from mergenet.deltas.models import ModelSource
from mergenet.deltas.validate import ValidationLimits, validate_lora_adapter

from .helpers import make_adapter, write_config

OK: dict[str, Any] = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}


def _parse(cfg: Any) -> Any:
    return parse_adapter_config(cfg if isinstance(cfg, bytes) else json.dumps(cfg).encode())


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([OK], "must be a JSON object .* not a list"),
        ("LORA", "must be a JSON object"),
        (OK | {"r": 0}, "r: Input should be greater than or equal to 1"),
        (OK | {"r": MAX_LORA_RANK + 1}, f"less than or equal to {MAX_LORA_RANK}"),
        (OK | {"r": 4.0}, "r: Input should be a valid integer"),
        (OK | {"r": True}, "r: Input should be a valid integer"),
        ({k: v for k, v in OK.items() if k != "r"}, "r: Field required"),
        (OK | {"lora_alpha": "8"}, "lora_alpha: Input should be a valid number"),
        (OK | {"peft_type": "IA3"}, "peft_type: Input should be 'LORA'"),
        (OK | {"target_modules": ".*q_proj"}, "a string is a regular expression"),
        (OK | {"target_modules": ["q_proj|v_proj"]}, "is not a module name"),
        (OK | {"target_modules": []}, "at least 1 item"),
        (OK | {"rank_pattern": {"(": 2}}, r"rank_pattern key '\(' is not a module name"),
        (OK | {"rank_pattern": {"q_proj": 0}}, "greater than or equal to 1"),
        (OK | {"alpha_pattern": {"[a-": 2}}, "alpha_pattern key '\\[a-' is not a module name"),
        (OK | {"use_dora": True}, "DoRA adapters are not supported"),
        (OK | {"bias": "all"}, "bias: Input should be 'none'"),
        (OK | {"lora_bias": True}, "'lora_bias' = True changes what the adapter computes"),
        (OK | {"layer_replication": [[0, 2]]}, "'layer_replication'"),
        (OK | {"some_future_variant": {"on": 1}}, "'some_future_variant'"),
        (OK | {"use_rslora": "yes"}, "use_rslora: Input should be a valid boolean"),
    ],
)
def test_malformed_configs_are_invalid_input(config: Any, message: str) -> None:
    with pytest.raises(DeltaValidationError, match=message):
        _parse(config)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_lora_alpha_must_be_finite(literal: str) -> None:
    text = json.dumps(OK).replace('"lora_alpha": 8', f'"lora_alpha": {literal}').encode()
    with pytest.raises(DeltaValidationError, match="lora_alpha: Input should be a finite number"):
        _parse(text)


def test_oversize_config_is_too_large() -> None:
    with pytest.raises(DeltaTooLarge, match="over the 1048576-byte cap"):
        _parse(OK | {"task_type": "x" * (1 << 20)})


def test_catastrophic_regex_key_is_rejected_in_well_under_a_second() -> None:
    """``(.|.|.)*Z`` took 30 s+ of one core inside the submission lock; now no regex runs."""
    started = time.perf_counter()
    with pytest.raises(DeltaValidationError, match=re.escape("'(.|.|.)*Z' is not a module name")):
        _parse(OK | {"rank_pattern": {"(.|.|.)*Z": 2}})
    assert time.perf_counter() - started < 0.1


def test_pattern_keys_match_literally_as_dotted_suffixes() -> None:
    patterns = {"layers.1.self_attn.q_proj": 2, "q_proj": 3}
    assert pattern_value(patterns, "model.layers.1.self_attn.q_proj", 8) == 2
    assert pattern_value(patterns, "model.layers.0.self_attn.q_proj", 8) == 3
    assert pattern_value(patterns, "model.layers.0.self_attn.xq_proj", 8) == 8  # not a suffix
    assert pattern_value({"layers.1": 2}, "model.layersX1", 8) == 8  # "." is not a wildcard


def test_real_peft_configs_and_ignored_keys_pass(tmp_path: Path, base_dir: Path) -> None:
    from peft import LoraConfig

    saved = make_adapter(tmp_path / "a", base_dir, rank_pattern={"layers.1.self_attn.q_proj": 2})
    cfg = _parse(saved)
    assert cfg.r == 4 and cfg.rank_for("model.layers.1.self_attn.q_proj") == 2
    LoraConfig(r=8, target_modules=["v_proj"]).save_pretrained(str(tmp_path / "d"))
    # every key the installed PEFT writes is understood
    assert _parse((tmp_path / "d" / "adapter_config.json").read_bytes()).r == 8
    assert _parse(OK | {"lora_dropout": 0.1, "init_lora_weights": "gaussian"}).lora_alpha == 8


def _validate(folder: Path, base_dir: Path) -> None:
    limits = ValidationLimits(max_relative_norm=100.0)
    validate_lora_adapter(folder, ModelSource(base_dir), limits)


def test_target_modules_must_exist_in_the_parent(tmp_path: Path, base_dir: Path) -> None:
    folder = tmp_path / "a"
    saved = make_adapter(folder, base_dir)
    _validate(folder, base_dir)  # the honest adapter passes
    write_config(folder, saved | {"target_modules": ["q_proj", "v_proj", "wq"]})
    with pytest.raises(DeltaValidationError, match="target module 'wq' is not a module"):
        _validate(folder, base_dir)
    write_config(folder, saved | {"target_modules": ["q_proj"]})
    with pytest.raises(DeltaValidationError, match=r"v_proj.*which target_modules"):
        _validate(folder, base_dir)


def test_factor_shapes_must_fit_rank_and_parent(tmp_path: Path, base_dir: Path) -> None:
    folder = tmp_path / "a"
    saved = make_adapter(folder, base_dir)
    write_config(folder, saved | {"r": 8})
    with pytest.raises(DeltaValidationError, match=r"do not fit the parent weight .* at rank 8"):
        _validate(folder, base_dir)
    write_config(folder, saved | {"rank_pattern": {"layers.0.self_attn.v_proj": 2}})
    with pytest.raises(DeltaValidationError, match=r"layers\.0\.self_attn\.v_proj.*at rank 2"):
        _validate(folder, base_dir)
    write_config(folder, saved | {"fan_in_fan_out": True})
    with pytest.raises(DeltaValidationError, match="fan_in_fan_out"):
        _validate(folder, base_dir)
    write_config(folder, saved)
    assert LoraDelta(folder).names()
