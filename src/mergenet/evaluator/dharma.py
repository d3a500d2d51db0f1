"""Dharma rows and the Dharma set builder.

A Dharma row (pharaouk/dharma) is ``{"input": "<question>\\nA. ..\\nB. ..\\nAnswer:",
"output": "B", "subject": "..."}``. This module parses such rows, renders them back, turns
them into their *completion form* (the answer text itself follows the question, which a tiny
model learns long before it learns to map an answer onto a letter), and builds a Dharma set
from a config in the shape of upstream's ``config.yml``.

The builder avoids upstream's bugs on purpose:

* each benchmark is sampled with its own count (upstream's TruthfulQA used OBQA's count);
* choice labels and answers use the same letters, always ``A. text`` lines, and
  ``Answer:`` is the last line, after the choices;
* every random draw comes from a ``random.Random`` seeded from ``data_seed`` and a purpose
  string (never the global RNG, never ``hash()``), so the output is byte-for-byte a
  function of the config and the source files;
* ``force_dist`` balances answer letters by *moving the correct choice* inside ``input``
  (and re-lettering ``output`` to match), instead of subsampling by answer key and hoping.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

ANSWER_LINE = "Answer:"
LETTERS = string.ascii_uppercase
_CHOICE_RE = re.compile(r"^([A-Z])\. (.*)$", re.DOTALL)

# Choices that point at other choices ("all of the above", "both A and B") stop being true
# when choices move, so ``force_dist`` leaves rows that contain one where they are.
_POSITIONAL_RES = (
    re.compile(
        r"\b(all|none|both|neither|any)\s+of\s+the\s+"
        r"(above|below|others|other options|options|choices|answers)\b",
        re.IGNORECASE,
    ),
    re.compile(r"\b(both|either|neither|only)\s+\(?[A-Z]\)?\s*(and|or|nor|&)\s*\(?[A-Z]\)?(?!\w)"),
    re.compile(r"^\(?[A-Z]\)?(\s*(,|and|&|or)\s*\(?[A-Z]\)?)+\.?$"),
)


class DharmaError(ValueError):
    """A Dharma row, config or source that cannot be used; the message says where and why."""


class ParsedRow(NamedTuple):
    """A multiple-choice row split into its parts; unpacks as ``question, choices, answer``."""

    question: str
    choices: tuple[str, ...]
    answer: int


# --------------------------------------------------------------------------- rows


def parse_row(row: Mapping[str, Any]) -> ParsedRow:
    """Split a Dharma row into question text, choice texts and the answer's index.

    The choices are the run of ``X. text`` lines (``A``, ``B``, ... in order) directly before
    the final ``Answer:`` line; the question is everything before the ``A.`` line, kept
    verbatim (MMLU's "The following are multiple choice questions ..." preamble included).
    Choice texts are kept exactly, trailing spaces included, so that
    ``render_row(parse_row(r))`` reproduces ``r["input"]``. Raises :class:`DharmaError`.
    """
    text = row.get("input")
    output = row.get("output")
    if not isinstance(text, str) or not isinstance(output, str):
        raise DharmaError('a Dharma row needs string fields "input" and "output"')
    lines = text.rstrip().split("\n")
    if len(lines) < 3 or lines[-1].strip() != ANSWER_LINE:
        raise DharmaError('"input" must end with a line "Answer:" after the choice lines')
    end = len(lines) - 1  # index of the "Answer:" line
    start = end
    while start > 0 and _CHOICE_RE.match(lines[start - 1]):
        start -= 1
    labels = [m.group(1) for line in lines[start:end] if (m := _CHOICE_RE.match(line))]
    # the choices are the last suffix of that run that reads A, B, C, ... in order
    first = next(
        (s for s in range(len(labels)) if labels[s:] == list(LETTERS[: len(labels) - s])),
        None,
    )
    if first is None:
        raise DharmaError(
            '"input" must list its choices as consecutive lines "A. ...", "B. ...", ... '
            'directly before "Answer:"'
        )
    i = start + first
    choices = [m.group(2) for line in lines[i:end] if (m := _CHOICE_RE.match(line))]
    if len(choices) < 2:
        raise DharmaError("a multiple-choice row needs at least two choices")
    question = "\n".join(lines[:i])
    if not question.strip():
        raise DharmaError('"input" has no question text before the choices')
    letter = output.strip()
    if len(letter) != 1 or letter not in LETTERS[: len(choices)]:
        raise DharmaError(
            f'"output" must be one of the choice letters {LETTERS[: len(choices)]}, got {output!r}'
        )
    return ParsedRow(question, tuple(choices), LETTERS.index(letter))


def render_row(parsed: ParsedRow, subject: str | None = None) -> dict[str, str]:
    """The Dharma row for ``parsed``: choices as ``A. text`` lines, then ``Answer:``."""
    if not 2 <= len(parsed.choices) <= len(LETTERS):
        raise DharmaError(f"a row needs 2..{len(LETTERS)} choices, got {len(parsed.choices)}")
    if not 0 <= parsed.answer < len(parsed.choices):
        raise DharmaError(f"answer index {parsed.answer} out of range")
    if any("\n" in c for c in parsed.choices):
        raise DharmaError("a choice text cannot contain a line break")
    body = "\n".join(f"{LETTERS[j]}. {c}" for j, c in enumerate(parsed.choices))
    row = {"input": f"{parsed.question}\n{body}\n{ANSWER_LINE}", "output": LETTERS[parsed.answer]}
    if subject is not None:
        row["subject"] = subject
    return row


def completion_form(row: Mapping[str, Any]) -> dict[str, str]:
    """The row with the answer *text* after the question: ``{"input": "<q>\\nAnswer:",
    "output": "<correct choice text>"}`` (``subject`` kept when present).

    The choice text is stripped of surrounding whitespace (MMLU carries trailing spaces
    that would only add noise to the answer loss).
    """
    question, choices, answer = parse_row(row)
    out = {"input": f"{question}\n{ANSWER_LINE}", "output": choices[answer].strip()}
    if "subject" in row:
        out["subject"] = row["subject"]
    return out


def with_answer_at(parsed: ParsedRow, target: int) -> ParsedRow:
    """The same question with the correct choice moved to position ``target``.

    The correct choice and the one at ``target`` swap places; every other choice keeps its
    letter, so the row changes as little as possible and stays internally consistent.
    """
    if not 0 <= target < len(parsed.choices):
        raise DharmaError(f"target index {target} out of range")
    choices = list(parsed.choices)
    choices[parsed.answer], choices[target] = choices[target], choices[parsed.answer]
    return ParsedRow(parsed.question, tuple(choices), target)


def is_positional(parsed: ParsedRow) -> bool:
    """True when a choice refers to other choices by position ("all of the above", "both A
    and B"): moving choices would make such a row wrong, so balancing leaves it alone."""
    return any(rx.search(c.strip()) for c in parsed.choices for rx in _POSITIONAL_RES)


def balance_letters(rows: Sequence[ParsedRow], rng: random.Random) -> list[ParsedRow]:
    """Re-letter rows so that answer letters are as even as possible.

    Rows are grouped by their number of choices; within a group, rows with positional
    choices keep their letter and the others receive target letters by water-filling (each
    next target goes to the currently rarest letter), so every letter's count ends within one
    of the others whenever the fixed rows allow it. The targets are shuffled with ``rng``
    before being handed out, so which row gets which letter carries no pattern.
    """
    out = list(rows)
    groups: dict[int, list[int]] = {}
    for idx, row in enumerate(rows):
        groups.setdefault(len(row.choices), []).append(idx)
    for m, idxs in sorted(groups.items()):
        counts = [0] * m
        movable = []
        for idx in idxs:
            if is_positional(rows[idx]):
                counts[rows[idx].answer] += 1
            else:
                movable.append(idx)
        targets = []
        for _ in movable:
            j = min(range(m), key=lambda k: (counts[k], k))
            counts[j] += 1
            targets.append(j)
        rng.shuffle(targets)
        for idx, target in zip(movable, targets, strict=True):
            out[idx] = with_answer_at(rows[idx], target)
    return out


def derive_rng(seed: int, *purpose: str) -> random.Random:
    """A ``random.Random`` for one purpose, seeded from ``seed`` and the purpose strings via
    SHA-256, so draws for one benchmark do not shift when another is added and no draw
    depends on the global RNG or on Python's per-process string hashing."""
    material = "\x1f".join([str(seed), *purpose]).encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))


# --------------------------------------------------------------------------- sources


def read_jsonl_rows(path: Path) -> list[ParsedRow]:
    """Parse every row of a local JSONL source; errors name the file and line."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DharmaError(f"{path}: cannot read source ({exc.strerror or exc})") from exc
    rows = []
    with handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DharmaError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(data, dict):
                raise DharmaError(f"{path}:{lineno}: a row must be a JSON object")
            try:
                rows.append(parse_row(data))
            except DharmaError as exc:
                raise DharmaError(f"{path}:{lineno}: {exc}") from exc
    return rows


def load_hf_rows(dataset_id: str, *, split: str, subset: str | None) -> list[ParsedRow]:
    """Rows of a Hugging Face dataset already in Dharma format (``input``/``output``
    columns), e.g. a set built and uploaded by upstream dharma. Needs ``datasets`` and a
    network (or a warm HF cache)."""
    try:
        import datasets
    except ImportError as exc:
        raise DharmaError(
            f"source {dataset_id!r} is not a local file, and loading it as a Hugging Face "
            "dataset needs the `datasets` package: pip install datasets"
        ) from exc
    try:
        ds = datasets.load_dataset(dataset_id, subset, split=split)
    except Exception as exc:
        raise DharmaError(
            f"cannot load Hugging Face dataset {dataset_id!r} (split {split!r}): {exc}. "
            "Offline? Use a local JSONL file of Dharma rows as the source instead."
        ) from exc
    rows = []
    for i, data in enumerate(ds):
        try:
            rows.append(parse_row(data))
        except DharmaError as exc:
            raise DharmaError(f"{dataset_id}[{split}] row {i}: {exc}") from exc
    return rows


# --------------------------------------------------------------------------- config

_TOP_KEYS = {"dataset_size", "data_seed", "force_dist", "benchmarks"}
_BENCH_KEYS = {"count", "source", "split", "subset"}
_UPSTREAM_ONLY = {"output", "hf_repo", "hf_upload", "hf_private", "prompt_format"}
_HF_PREFIX = "hf:"


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
        if src.startswith(_HF_PREFIX):
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


# --------------------------------------------------------------------------- build

Progress = Callable[[str, int, int], None]


def load_source(config: DharmaConfig, spec: BenchmarkSpec) -> list[ParsedRow]:
    """All rows of one benchmark's source, parsed."""
    path = config.local_path(spec)
    if path is None:
        dataset_id = spec.source.removeprefix(_HF_PREFIX)
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
