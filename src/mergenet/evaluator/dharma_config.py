"""The Dharma build config: upstream's ``config.yml`` shape, validated, every error naming its key.

``dataset_size`` rows are split over ``benchmarks`` in proportion to their ``count``
(:func:`allocate`); each benchmark's rows come from a local JSONL file or a Hugging Face
dataset id; ``data_seed`` seeds every draw and ``force_dist`` balances answer letters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mergenet.evaluator.dharma import DharmaError

_TOP_KEYS = {"dataset_size", "data_seed", "force_dist", "benchmarks"}
_BENCH_KEYS = {"count", "source", "split", "subset"}
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


def _int(value: Any, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DharmaError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def parse_config(data: Any, *, base_dir: Path = Path("."), origin: str = "config") -> DharmaConfig:
    """Validate a config mapping; every error names the offending key."""
    if not isinstance(data, dict):
        raise DharmaError(f"{origin}: the config must be a YAML mapping")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        hint = ""
        if unknown & _UPSTREAM_ONLY:
            hint = (
                " (upstream dharma's output/upload/prompt options are not supported: "
                "mergenet writes the one file given by --out in the fixed Dharma format)"
            )
        raise DharmaError(
            f"{origin}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}{hint}"
        )
    for key in ("dataset_size", "data_seed", "benchmarks"):
        if key not in data:
            raise DharmaError(f"{origin}: missing required key {key!r}")
    size = _int(data["dataset_size"], f"{origin}: dataset_size", minimum=1)
    seed = _int(data["data_seed"], f"{origin}: data_seed", minimum=0)
    force = data.get("force_dist", False)
    if not isinstance(force, bool):
        raise DharmaError(f"{origin}: force_dist must be true or false, got {force!r}")
    benches = data["benchmarks"]
    if not isinstance(benches, dict) or not benches:
        raise DharmaError(f"{origin}: benchmarks must be a non-empty mapping name -> entry")
    specs = []
    for name, entry in benches.items():
        where = f"{origin}: benchmarks.{name}"
        if not isinstance(name, str) or not name:
            raise DharmaError(f"{origin}: benchmark names must be non-empty strings")
        if not isinstance(entry, dict):
            raise DharmaError(f"{where} must be a mapping with count and source")
        bad = set(entry) - _BENCH_KEYS
        if bad:
            raise DharmaError(
                f"{where}: unknown key(s) {sorted(bad)}; allowed: {sorted(_BENCH_KEYS)}"
            )
        if "count" not in entry or "source" not in entry:
            raise DharmaError(f"{where}: needs both 'count' and 'source'")
        source = entry["source"]
        if not isinstance(source, str) or not source.strip():
            raise DharmaError(f"{where}.source must be a file path or a Hugging Face dataset id")
        for key in ("split", "subset"):
            if key in entry and not isinstance(entry[key], str):
                raise DharmaError(f"{where}.{key} must be a string")
        specs.append(
            BenchmarkSpec(
                name=name,
                count=_int(entry["count"], f"{where}.count", minimum=0),
                source=source.strip(),
                split=entry.get("split", "test"),
                subset=entry.get("subset"),
            )
        )
    if not any(s.count for s in specs):
        raise DharmaError(f"{origin}: every benchmark has count 0; nothing to build")
    return DharmaConfig(size, seed, tuple(specs), force, base_dir)


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
