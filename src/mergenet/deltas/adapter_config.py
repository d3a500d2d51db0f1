"""The strict schema of a PEFT LoRA ``adapter_config.json``, and literal pattern matching.

What is read (pydantic, strict types): ``peft_type`` LORA; ``1 ≤ r ≤`` :data:`MAX_LORA_RANK`;
a finite ``lora_alpha``; ``target_modules`` a list of module names (PEFT reads a *string* as
a regular expression: not accepted); ``rank_pattern`` / ``alpha_pattern`` keyed by module
names; ``use_rslora``, ``fan_in_fan_out`` booleans; ``bias`` "none"; ``modules_to_save``.
Keys that only steer training, initialisation or bookkeeping (:data:`IGNORED_KEYS`) may hold
anything. Every other key — DoRA, LoRA biases, layer replication, aLoRA, new PEFT variants —
changes what the adapter computes, so it must be off (null, false, empty) or the config is
rejected with a message naming it.

No user text is ever compiled as a regular expression. PEFT matches a pattern key ``k`` with
``re.match(rf"(.*\\.)?({k})$", module)``; for the module names it documents (``q_proj``,
``layers.1.self_attn.q_proj``) that is "``module`` equals ``k`` or ends with ``.k``", which
:func:`matches_module` tests literally. Keys that are not dotted names (``(.|.|.)*Z``) are
rejected, so a hostile pattern costs nothing (it pinned a core for 30 s+ before).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mergenet.deltas.errors import DeltaTooLarge, DeltaValidationError
from mergenet.deltas.header_schema import explain
from mergenet.deltas.safe_json import loads_untrusted

MAX_LORA_RANK = 1024
MAX_CONFIG_BYTES = 1 << 20
_MODULE_NAME = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")

IGNORED_KEYS = frozenset(
    {
        "task_type",
        "auto_mapping",
        "peft_version",
        "base_model_name_or_path",
        "revision",
        "inference_mode",
        "lora_dropout",
        "init_lora_weights",
        "layers_to_transform",
        "layers_pattern",
        "exclude_modules",
        "megatron_config",
        "megatron_core",
        "loftq_config",
        "eva_config",
        "corda_config",
        "lora_ga_config",
        "qalora_group_size",
        "ensure_weight_tying",
    }
)
"""Keys that decide how adapters are created or trained, never what saved factors compute
(which modules are adapted is read from the weights file and checked against the parent)."""

Rank = Annotated[int, Field(strict=True, ge=1, le=MAX_LORA_RANK)]
Alpha = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def _module_name(value: str, field: str) -> str:
    if not isinstance(value, str) or len(value) > 256 or not _MODULE_NAME.fullmatch(value):
        raise ValueError(
            f"{field} {str(value)[:60]!r} is not a module name; use dotted names such "
            "as 'q_proj' or 'layers.1.self_attn.q_proj' (matched literally as a suffix of the "
            "module's name; regular expressions are not accepted)"
        )
    return value


class AdapterConfig(BaseModel):
    """The parts of a LoRA config that decide the delta (see module docstring)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    peft_type: Literal["LORA"] = "LORA"
    r: Rank
    lora_alpha: Alpha
    target_modules: Annotated[list[str], Field(min_length=1, max_length=4096)]
    rank_pattern: Annotated[dict[str, Rank], Field(max_length=4096)] = {}
    alpha_pattern: Annotated[dict[str, Alpha], Field(max_length=4096)] = {}
    use_rslora: Annotated[bool, Field(strict=True)] = False
    fan_in_fan_out: Annotated[bool, Field(strict=True)] = False
    bias: Literal["none"] = "none"
    modules_to_save: Annotated[list[str], Field(max_length=4096)] | None = None

    @field_validator("target_modules", "modules_to_save", mode="before")
    @classmethod
    def _names(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                f"{info.field_name} must be a list of module names; a string is a regular "
                "expression in PEFT and is not accepted"
            )
        if isinstance(value, list):
            return [_module_name(v, f"{info.field_name} entry") for v in value]
        return value

    @field_validator("rank_pattern", "alpha_pattern", mode="before")
    @classmethod
    def _pattern_keys(cls, value: Any, info: Any) -> Any:
        if isinstance(value, dict):
            for key in value:
                _module_name(key, f"{info.field_name} key")
        return value

    def scaling_for(self, module: str) -> float:
        """PEFT's scale of ``module``'s update: alpha / r (or alpha / √r under rsLoRA)."""
        r = pattern_value(self.rank_pattern, module, self.r)
        alpha = pattern_value(self.alpha_pattern, module, self.lora_alpha)
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r

    def rank_for(self, module: str) -> int:
        return int(pattern_value(self.rank_pattern, module, self.r))


def matches_module(key: str, module: str) -> bool:
    """``module`` is ``key`` or ends with ``"." + key`` (PEFT's suffix rule, literally)."""
    return module == key or module.endswith("." + key)


def pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    """The value of the first pattern key matching ``module`` (PEFT's ``get_pattern_key``)."""
    for key, value in patterns.items():
        if matches_module(key, module):
            return value
    return default


def _is_off(value: Any) -> bool:
    return value is None or value is False or value in ({}, [], "")


def _check_extras(cfg: AdapterConfig, what: str) -> None:
    for key, value in (cfg.model_extra or {}).items():
        if key in IGNORED_KEYS or _is_off(value):
            continue
        if key == "use_dora":
            raise DeltaValidationError(f"{what}: DoRA adapters are not supported; train plain LoRA")
        raise DeltaValidationError(
            f"{what}: {key[:60]!r} = {str(value)[:60]} changes what the adapter computes and "
            "is not supported; train a plain LoRA adapter (leave it unset)"
        )


def parse_adapter_config(data: bytes, what: str = "adapter_config.json") -> AdapterConfig:
    """Parse and check the bytes of an ``adapter_config.json`` (see module docstring)."""
    if len(data) > MAX_CONFIG_BYTES:
        raise DeltaTooLarge(f"{what} is {len(data)} bytes, over the {MAX_CONFIG_BYTES}-byte cap")
    raw = loads_untrusted(data, what)
    if not isinstance(raw, dict):
        raise DeltaValidationError(
            f"{what} must be a JSON object (PEFT's LoraConfig saved by save_pretrained), "
            f"not a {type(raw).__name__}"
        )
    try:
        cfg = AdapterConfig.model_validate(raw)
    except ValidationError as exc:
        raise DeltaValidationError(f"{what}: {explain(exc)}") from None
    _check_extras(cfg, what)
    return cfg
