"""Building a Dharma set from a config: sample, balance, shuffle, write; byte-for-byte a
function of the config and the source files (see :mod:`mergenet.evaluator.dharma`)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mergenet.evaluator.dharma import (
    DharmaError,
    ParsedRow,
    balance_letters,
    derive_rng,
    load_hf_rows,
    read_jsonl_rows,
    render_row,
)
from mergenet.evaluator.dharma_config import HF_PREFIX, BenchmarkSpec, DharmaConfig, allocate

Progress = Callable[[str, int, int], None]


def load_source(config: DharmaConfig, spec: BenchmarkSpec) -> list[ParsedRow]:
    """All rows of one benchmark's source, parsed."""
    path = config.local_path(spec)
    if path is None:
        dataset_id = spec.source.removeprefix(HF_PREFIX)
        return load_hf_rows(dataset_id, split=spec.split, subset=spec.subset)
    if not path.is_file():
        raise DharmaError(f"benchmarks.{spec.name}: source file {path} does not exist")
    return read_jsonl_rows(path)


def build_dharma(config: DharmaConfig, *, progress: Progress | None = None) -> list[dict[str, str]]:
    """The shuffled Dharma set for ``config``, as rows ``{"input", "output", "subject"}``.

    Each benchmark draws its own allocated number of distinct rows (an error if its source
    holds fewer), optionally re-lettered to balance answers, with ``subject`` set to the
    benchmark's name; then the whole set is shuffled. ``progress(stage, done, total)`` is
    called before each benchmark (stage = its name) and once at the end.
    """
    alloc = allocate(config.dataset_size, {s.name: s.count for s in config.benchmarks})
    active = [s for s in config.benchmarks if alloc[s.name] > 0]
    rows: list[dict[str, str]] = []
    for done, spec in enumerate(active):
        if progress is not None:
            progress(spec.name, done, len(active))
        need = alloc[spec.name]
        pool = load_source(config, spec)
        if len(pool) < need:
            raise DharmaError(
                f"benchmarks.{spec.name}: needs {need} rows but its source {spec.source} holds "
                f"{len(pool)}; "
                "lower dataset_size or this benchmark's count"
            )
        order = derive_rng(config.data_seed, "sample", spec.name).sample(range(len(pool)), need)
        picked = [pool[i] for i in order]
        if config.force_dist:
            picked = balance_letters(picked, derive_rng(config.data_seed, "balance", spec.name))
        rows.extend(render_row(p, subject=spec.name) for p in picked)
    derive_rng(config.data_seed, "shuffle").shuffle(rows)
    if progress is not None:
        progress("shuffled", len(active), len(active))
    return rows


def dumps_rows(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Canonical JSONL bytes: keys in row order, UTF-8, ``\\n`` line ends."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_rows(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write rows as JSONL atomically (temp file, then rename): a failed build leaves any
    previous file intact."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(dumps_rows(rows))
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise DharmaError(f"{path}: cannot write output ({exc.strerror or exc})") from exc
    return path


def letter_counts(rows: Iterable[Mapping[str, Any]]) -> dict[str, Counter[str]]:
    """Answer-letter counts per subject (for reports and balance checks)."""
    out: dict[str, Counter[str]] = {}
    for r in rows:
        out.setdefault(str(r.get("subject")), Counter())[r["output"].strip()] += 1
    return out
