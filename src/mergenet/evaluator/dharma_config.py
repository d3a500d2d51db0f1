"""The Dharma build config: upstream's ``config.yml`` shape, validated by pydantic (strict: no
coercion), every error naming its key.

``dataset_size`` rows are split over ``benchmarks`` in proportion to their ``count``
(:func:`allocate`); each benchmark's rows come from a local JSONL file or a Hugging Face
dataset id; ``data_seed`` seeds every draw and ``force_dist`` balances answer letters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mergenet.evaluator.dharma import DharmaError

_UPSTREAM_ONLY = {"output", "hf_repo", "hf_upload", "hf_private", "prompt_format"}
HF_PREFIX = "hf:"


@dataclass(frozen=True)
class BenchmarkSpec:
    """One ``benchmarks:`` entry: a relative weight and where its rows come from.

    ``source`` is a local JSONL path (relative paths resolve against the config file's
    folder, so the output does not depend on the working directory) or a Hugging Face
    dataset id (``hf:owner/name`` to be explicit); ``split``/``subset`` only apply to the
    latter.
    """

    name: str
    count: int
    source: str
    split: str = "test"
    subset: str | None = None


@dataclass(frozen=True)
class DharmaConfig:
    """A validated Dharma build config."""

    dataset_size: int
    data_seed: int
    benchmarks: tuple[BenchmarkSpec, ...]
    force_dist: bool = False
    base_dir: Path = Path(".")

    def local_path(self, spec: BenchmarkSpec) -> Path | None:
        """The local file behind ``spec.source``, or None when it names an HF dataset."""
        src = spec.source
        if src.startswith(HF_PREFIX):
            return None
        path = Path(src).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        looks_local = src.endswith((".jsonl", ".json")) or src.startswith((".", "/", "~"))
        return path if path.exists() or looks_local else None


class _Entry(BaseModel):
    """One ``benchmarks:`` entry as the file holds it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    count: int = Field(ge=0)
    source: str = Field(pattern=r"\S")
    split: str = "test"
    subset: str | None = None


class _File(BaseModel):
    """The config file's shape; :func:`parse_config` turns it into a ``DharmaConfig``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    dataset_size: int = Field(ge=1)
    data_seed: int = Field(ge=0)
    force_dist: bool = False
    benchmarks: dict[Annotated[str, Field(min_length=1)], _Entry] = Field(min_length=1)


def parse_config(data: Any, *, base_dir: Path = Path("."), origin: str = "config") -> DharmaConfig:
    """Validate a config mapping; every error names the offending key."""
    if not isinstance(data, dict):
        raise DharmaError(f"{origin}: the config must be a YAML mapping")
    try:
        f = _File.model_validate(data)
    except ValidationError as exc:
        raise DharmaError(f"{origin}: {_describe(exc)}") from None
    specs = tuple(
        BenchmarkSpec(name, e.count, e.source.strip(), e.split, e.subset)
        for name, e in f.benchmarks.items()
    )
    if not any(s.count for s in specs):
        raise DharmaError(f"{origin}: every benchmark has count 0; nothing to build")
    return DharmaConfig(f.dataset_size, f.data_seed, specs, f.force_dist, base_dir)


def _describe(exc: ValidationError) -> str:
    """The first problem pydantic found, in the words of the config file (unknown keys first,
    all of them at once, then missing keys, then bad values)."""
    errors = exc.errors()
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    if extra:
        at = extra[0]["loc"][:-1]
        keys = sorted(str(e["loc"][-1]) for e in extra if e["loc"][:-1] == at)
        allowed = sorted((_Entry if at else _File).model_fields)
        hint = ""
        if set(keys) & _UPSTREAM_ONLY:
            hint = (
                " (upstream dharma's output/upload/prompt options are not supported: "
                "mergenet writes the one file given by --out in the fixed Dharma format)"
            )
        where = f"{_path(at)}: " if at else ""
        return f"{where}unknown key(s) {keys}; allowed: {allowed}{hint}"
    missing = [e for e in errors if e["type"] == "missing"]
    if missing:
        loc = missing[0]["loc"]
        if len(loc) == 1:
            return f"missing required key {loc[0]!r}"
        return f"{_path(loc[:-1])}: needs both 'count' and 'source'"
    return _value_error(errors[0])


def _value_error(e: Any) -> str:
    loc, value, kind = e["loc"], e["input"], e["type"]
    if loc == ("benchmarks",):
        return "benchmarks must be a non-empty mapping name -> entry"
    if loc[0] == "benchmarks" and loc[-1] == "[key]":
        return "benchmark names must be non-empty strings"
    if len(loc) == 2 and loc[0] == "benchmarks":
        return f"{_path(loc)} must be a mapping with count and source"
    where = _path(loc)
    if loc[-1] == "source":
        return f"{where} must be a file path or a Hugging Face dataset id"
    if loc[-1] in ("split", "subset"):
        return f"{where} must be a string"
    if kind == "bool_type":
        return f"{where} must be true or false, got {value!r}"
    minimum = 1 if loc == ("dataset_size",) else 0
    return f"{where} must be an integer >= {minimum}, got {value!r}"


def _path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def load_config(path: str | Path) -> DharmaConfig:
    """Read and validate a YAML config file; relative sources resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DharmaError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DharmaError(f"{path}: not valid YAML: {exc}") from exc
    return parse_config(data, base_dir=path.resolve().parent, origin=str(path))


def allocate(size: int, counts: Mapping[str, int]) -> dict[str, int]:
    """Split ``size`` rows over benchmarks in proportion to ``counts`` (largest remainder:
    the parts sum to exactly ``size``; ties go to the earlier benchmark in config order)."""
    total = sum(counts.values())
    if total <= 0:
        raise DharmaError("benchmark counts must have a positive sum")
    exact = {k: size * v / total for k, v in counts.items()}
    out = {k: math.floor(x) for k, x in exact.items()}
    order = sorted(counts, key=lambda k: (-(exact[k] - out[k]), list(counts).index(k)))
    for k in order[: size - sum(out.values())]:
        out[k] += 1
    return out
