"""Dharma rows, the config, and the builder: reproducible, balanced, upstream bugs absent."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mergenet.cli import app
from mergenet.evaluator.dharma import (
    LETTERS,
    DharmaError,
    ParsedRow,
    balance_letters,
    completion_form,
    derive_rng,
    is_positional,
    parse_row,
    read_jsonl_rows,
    render_row,
    with_answer_at,
)
from mergenet.evaluator.dharma_build import build_dharma, dumps_rows
from mergenet.evaluator.dharma_config import allocate, load_config, parse_config

FIXTURES = Path(__file__).parent / "fixtures"
MMLU = FIXTURES / "seed_mmlu.jsonl"
SHARED_MMLU = Path("/work/shared/data/dharma/seed_mmlu.jsonl")
MMLU_SHA256 = "0e45acdbde7fd2617d78c51706208a1d035245be410a56dccedd22783de1d9df"


def mmlu_rows() -> list[dict]:
    return [json.loads(line) for line in MMLU.read_text(encoding="utf-8").splitlines()]


def synthetic_rows(prefix: str, n: int, *, answer: int | None = None) -> list[dict]:
    """``n`` distinct 4-choice rows; the answer sits at ``answer`` (or cycles) on purpose."""
    rows = []
    for i in range(n):
        a = i % 4 if answer is None else answer
        choices = [f"{prefix} wrong {i}.{j}" for j in range(4)]
        choices[a] = f"{prefix} right {i}"
        rows.append(render_row(ParsedRow(f"{prefix} question {i}?", tuple(choices), a), "orig"))
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_config(tmp_path: Path, body: dict) -> Path:
    import yaml

    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def three_sources(tmp_path: Path) -> Path:
    """Three sources with different counts (upstream used one source's count for another)."""
    write_jsonl(tmp_path / "alpha.jsonl", synthetic_rows("alpha", 80, answer=0))
    write_jsonl(tmp_path / "beta.jsonl", synthetic_rows("beta", 60, answer=2))
    write_jsonl(tmp_path / "gamma.jsonl", synthetic_rows("gamma", 40))
    return write_config(
        tmp_path,
        {
            "dataset_size": 90,
            "data_seed": 7,
            "force_dist": True,
            "benchmarks": {
                "alpha": {"count": 5, "source": "alpha.jsonl"},
                "beta": {"count": 3, "source": "beta.jsonl"},
                "gamma": {"count": 1, "source": "gamma.jsonl"},
            },
        },
    )


# --------------------------------------------------------------------------- the real MMLU rows


def test_fixture_is_the_shared_mmlu_file() -> None:
    assert hashlib.sha256(MMLU.read_bytes()).hexdigest() == MMLU_SHA256
    if SHARED_MMLU.exists():
        assert SHARED_MMLU.read_bytes() == MMLU.read_bytes()


def test_every_mmlu_row_parses_to_four_choices_and_round_trips() -> None:
    rows = mmlu_rows()
    # The brief says 1,530; the file holds 1,531 distinct rows over 57 subjects.
    assert len(rows) == 1531
    assert len({r["subject"] for r in rows}) == 57
    for row in rows:
        question, choices, answer = parse_row(row)
        assert len(choices) == 4
        assert LETTERS[answer] == row["output"]
        assert question.startswith("The following are multiple choice questions")
        assert render_row(parse_row(row), row["subject"]) == row


def test_mmlu_completion_form_puts_the_answer_text_after_the_question() -> None:
    for row in mmlu_rows()[:200]:
        done = completion_form(row)
        question, choices, answer = parse_row(row)
        assert done["input"] == question + "\nAnswer:"
        assert "\nA. " not in done["input"]
        assert done["output"] == choices[answer].strip()
        assert done["subject"] == row["subject"]


def test_mmlu_build_balances_letters_and_keeps_every_answer(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {
            "dataset_size": 1531,
            "data_seed": 3,
            "force_dist": True,
            "benchmarks": {"mmlu": {"count": 1, "source": str(MMLU)}},
        },
    )
    built = build_dharma(load_config(config))
    letters = Counter(r["output"] for r in built)
    assert set(letters) == set("ABCD")
    assert max(letters.values()) - min(letters.values()) <= 1

    # Re-lettering moved choices, never changed which text is correct.
    def key(p: ParsedRow) -> tuple:
        return p.question, tuple(sorted(p.choices))  # one question appears twice in MMLU

    original = {key(parse_row(r)): parse_row(r) for r in mmlu_rows()}
    moved = 0
    for row in built:
        new = parse_row(row)
        old = original[key(new)]
        assert new.choices[new.answer] == old.choices[old.answer]
        assert sorted(new.choices) == sorted(old.choices)
        if is_positional(old):
            assert new == old  # "all of the above" rows stay where they are
        moved += new != old
    assert moved > 500


# --------------------------------------------------------------------------- the row parser


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"input": "Q?\nA. x\nB. y", "output": "A"}, "Answer:"),
        ({"input": "Q?\nAnswer:\nA. x\nB. y", "output": "A"}, "Answer:"),  # upstream order bug
        ({"input": "Q?\nA: x\nB: y\nAnswer:", "output": "A"}, "consecutive"),
        ({"input": "Q?\nA. x\nC. y\nAnswer:", "output": "A"}, "consecutive"),
        ({"input": "Q?\nB. x\nC. y\nAnswer:", "output": "B"}, "consecutive"),
        ({"input": "Q?\nA. x\nB. y\nAnswer:", "output": "C"}, "one of the choice letters"),
        ({"input": "Q?\nA. x\nB. y\nAnswer:", "output": "1"}, "one of the choice letters"),
        ({"input": "A. x\nB. y\nAnswer:", "output": "A"}, "no question"),
        ({"input": "Q?\nA. x\nAnswer:", "output": "A"}, "at least two"),
        ({"input": "Q?\nA. x\nB. y\nAnswer:"}, "input"),
    ],
)
def test_malformed_rows_are_rejected_with_a_reason(row: dict, message: str) -> None:
    with pytest.raises(DharmaError, match=message):
        parse_row(row)


def test_a_question_line_that_looks_like_a_choice_stays_in_the_question() -> None:
    row = {"input": "Pick one.\nA. is a label here\nA. yes\nB. no\nAnswer:", "output": "B"}
    assert parse_row(row) == ParsedRow("Pick one.\nA. is a label here", ("yes", "no"), 1)


_text = st.text(alphabet="abcxyz 0123?!,é", min_size=1, max_size=20).filter(str.strip)


@given(
    question=st.lists(_text, min_size=1, max_size=3).map("\n".join),
    choices=st.lists(st.text(alphabet="abc xyz.-", max_size=12), min_size=2, max_size=8),
    data=st.data(),
)
def test_render_then_parse_is_the_identity(question: str, choices: list[str], data) -> None:
    answer = data.draw(st.integers(0, len(choices) - 1))
    parsed = ParsedRow(question, tuple(choices), answer)
    row = render_row(parsed, "s")
    assert row["input"].endswith("\nAnswer:")
    assert row["output"] == LETTERS[answer]
    assert parse_row(row) == parsed


@given(n=st.integers(2, 6), data=st.data())
def test_moving_the_answer_keeps_the_correct_text_and_swaps_only_two(n: int, data) -> None:
    answer = data.draw(st.integers(0, n - 1))
    target = data.draw(st.integers(0, n - 1))
    parsed = ParsedRow("q", tuple(f"c{i}" for i in range(n)), answer)
    moved = with_answer_at(parsed, target)
    assert moved.answer == target
    assert moved.choices[target] == parsed.choices[answer]
    assert sorted(moved.choices) == sorted(parsed.choices)
    assert sum(a != b for a, b in zip(moved.choices, parsed.choices, strict=True)) in (0, 2)


def test_positional_choices_are_detected() -> None:
    assert is_positional(ParsedRow("q", ("x", "y", "All of the above"), 2))
    assert is_positional(ParsedRow("q", ("x", "y", "both A and B"), 2))
    assert is_positional(ParsedRow("q", ("x", "y", "A and C"), 2))
    assert not is_positional(ParsedRow("q", ("Above all", "A cat", "Vitamin B"), 0))


@given(
    shapes=st.lists(st.tuples(st.integers(2, 5), st.integers(0, 4)), min_size=1, max_size=60),
    seed=st.integers(0, 2**32),
)
def test_balancing_evens_letters_within_each_choice_count(shapes, seed: int) -> None:
    rows = [
        ParsedRow(f"q{i}", tuple(f"c{i}.{j}" for j in range(m)), a % m)
        for i, (m, a) in enumerate(shapes)
    ]
    out = balance_letters(rows, random.Random(seed))
    for m in {len(r.choices) for r in rows}:
        counts = Counter(r.answer for r in out if len(r.choices) == m)
        per_letter = [counts.get(j, 0) for j in range(m)]
        assert max(per_letter) - min(per_letter) <= 1
    for old, new in zip(rows, out, strict=True):
        assert new.choices[new.answer] == old.choices[old.answer]


def test_balancing_compensates_for_rows_it_must_not_move() -> None:
    fixed = [ParsedRow(f"q{i}", ("x", "y", "z", "none of the above"), 3) for i in range(3)]
    free = [ParsedRow(f"f{i}", ("a", "b", "c", "d"), 3) for i in range(9)]
    out = balance_letters(fixed + free, random.Random(0))
    assert out[:3] == fixed
    assert Counter(r.answer for r in out) == {0: 3, 1: 3, 2: 3, 3: 3}
    assert all(r.answer != 3 for r in out[3:])  # D is already full with the fixed rows


# --------------------------------------------------------------------------- allocation


def test_allocation_normalises_counts_to_the_size() -> None:
    assert allocate(90, {"a": 5, "b": 3, "c": 1}) == {"a": 50, "b": 30, "c": 10}
    # 100 * (1/3) each: 33.33.. -> the remainder goes to the first in config order
    assert allocate(100, {"x": 1, "y": 1, "z": 1}) == {"x": 34, "y": 33, "z": 33}


@given(
    size=st.integers(1, 5000),
    counts=st.lists(st.integers(0, 1000), min_size=1, max_size=8).filter(any),
)
def test_allocation_sums_to_the_size_and_stays_proportional(size: int, counts) -> None:
    named = {f"b{i}": c for i, c in enumerate(counts)}
    out = allocate(size, named)
    assert sum(out.values()) == size
    for k, c in named.items():
        assert abs(out[k] - size * c / sum(counts)) < 1


# --------------------------------------------------------------------------- the builder


def test_each_source_uses_its_own_count_and_name(three_sources: Path) -> None:
    built = build_dharma(load_config(three_sources))
    assert Counter(r["subject"] for r in built) == {"alpha": 50, "beta": 30, "gamma": 10}
    for row in built:
        assert set(row) == {"input", "output", "subject"}
        question = parse_row(row).question
        assert question.startswith(row["subject"])  # drawn from its own source


def test_rows_are_distinct_within_a_benchmark(three_sources: Path) -> None:
    built = build_dharma(load_config(three_sources))
    questions = [parse_row(r).question for r in built]
    assert len(set(questions)) == len(questions)


def test_force_dist_balances_every_benchmark_and_reletters_consistently(
    three_sources: Path,
) -> None:
    built = build_dharma(load_config(three_sources))
    for name in ("alpha", "beta", "gamma"):
        counts = Counter(r["output"] for r in built if r["subject"] == name)
        assert set(counts) == set("ABCD")
        assert max(counts.values()) - min(counts.values()) <= 1
    for row in built:
        question, choices, answer = parse_row(row)
        # sources name the right answer "<prefix> right <i>" for question "<prefix> question <i>?"
        assert choices[answer] == question.replace("question", "right").rstrip("?")
        assert f"\n{row['output']}. {choices[answer]}\n" in row["input"] + "\n"


def test_without_force_dist_rows_are_copied_verbatim(three_sources: Path) -> None:
    cfg = load_config(three_sources)
    cfg = type(cfg)(cfg.dataset_size, cfg.data_seed, cfg.benchmarks, False, cfg.base_dir)
    built = build_dharma(cfg)
    sources = {}
    for name in ("alpha", "beta", "gamma"):
        lines = (cfg.base_dir / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        sources[name] = {r["input"]: r["output"] for r in map(json.loads, lines)}
    for row in built:
        assert sources[row["subject"]][row["input"]] == row["output"]
    assert {r["output"] for r in built if r["subject"] == "alpha"} == {"A"}  # not balanced


def test_the_output_is_byte_for_byte_a_function_of_the_config(three_sources: Path) -> None:
    first = dumps_rows(build_dharma(load_config(three_sources)))
    random.seed(12345)  # the global RNG must play no part
    random.random()
    assert dumps_rows(build_dharma(load_config(three_sources))) == first
    other = load_config(three_sources)
    other = type(other)(other.dataset_size, 8, other.benchmarks, True, other.base_dir)
    assert dumps_rows(build_dharma(other)) != first  # the seed matters


def test_the_output_does_not_depend_on_the_process_or_working_dir(
    three_sources: Path, tmp_path: Path
) -> None:
    here = dumps_rows(build_dharma(load_config(three_sources)))
    code = (
        "import sys; from mergenet.evaluator.dharma_build import build_dharma, dumps_rows; "
        "from mergenet.evaluator.dharma_config import load_config; "
        "sys.stdout.buffer.write(dumps_rows(build_dharma(load_config(sys.argv[1]))))"
    )
    for hash_seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(three_sources)],
            capture_output=True,
            check=True,
            cwd=tmp_path.parent,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
        ).stdout
        assert out == here


def test_adding_a_benchmark_does_not_change_another_benchmarks_rows(
    three_sources: Path,
) -> None:
    cfg = load_config(three_sources)
    alone = type(cfg)(50, cfg.data_seed, cfg.benchmarks[:1], True, cfg.base_dir)
    with_others = build_dharma(cfg)
    assert sorted(r["input"] for r in build_dharma(alone)) == sorted(
        r["input"] for r in with_others if r["subject"] == "alpha"
    )


def test_the_set_is_shuffled_across_benchmarks(three_sources: Path) -> None:
    subjects = [r["subject"] for r in build_dharma(load_config(three_sources))]
    assert subjects != sorted(subjects, key=["alpha", "beta", "gamma"].index)


def test_derived_rngs_are_independent_of_each_other() -> None:
    assert derive_rng(1, "sample", "a").random() == derive_rng(1, "sample", "a").random()
    assert derive_rng(1, "sample", "a").random() != derive_rng(1, "sample", "b").random()
    assert derive_rng(1, "sample", "a").random() != derive_rng(2, "sample", "a").random()


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"dataset_size": 5, "data_seed": 1, "benchmarks": {}, "extra": 1}, r"unknown key.*extra"),
        (
            {"dataset_size": 5, "data_seed": 1, "hf_upload": False, "benchmarks": {"a": {}}},
            "not supported",
        ),
        ({"data_seed": 1, "benchmarks": {"a": {"count": 1, "source": "a"}}}, "dataset_size"),
        (
            {"dataset_size": 5, "data_seed": 1, "benchmarks": {"a": {"count": 1, "src": "x"}}},
            r"benchmarks\.a: unknown key.*src",
        ),
        (
            {"dataset_size": 5, "data_seed": 1, "benchmarks": {"a": {"count": "1", "source": "x"}}},
            r"benchmarks\.a\.count must be an integer",
        ),
        (
            {"dataset_size": 0, "data_seed": 1, "benchmarks": {"a": {"count": 1, "source": "x"}}},
            "dataset_size must be an integer >= 1",
        ),
        (
            {"dataset_size": 5, "data_seed": 1, "benchmarks": {"a": {"count": 0, "source": "x"}}},
            "count 0",
        ),
        (
            {
                "dataset_size": 5,
                "data_seed": 1,
                "force_dist": "yes",
                "benchmarks": {"a": {"count": 1, "source": "x"}},
            },
            "force_dist",
        ),
        ([1, 2], "mapping"),
    ],
)
def test_bad_configs_name_the_problem(body, message: str) -> None:
    with pytest.raises(DharmaError, match=message):
        parse_config(body)


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("benchmarks: [unclosed\n", encoding="utf-8")
    with pytest.raises(DharmaError, match=r"bad\.yml: not valid YAML"):
        load_config(path)


def test_a_missing_source_file_is_named(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {
            "dataset_size": 5,
            "data_seed": 1,
            "benchmarks": {"a": {"count": 1, "source": "no.jsonl"}},
        },
    )
    with pytest.raises(DharmaError, match=r"benchmarks\.a: source file .*no\.jsonl does not exist"):
        build_dharma(load_config(config))


def test_a_bad_source_row_names_file_and_line(tmp_path: Path) -> None:
    rows = synthetic_rows("a", 3)
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, json.dumps({"input": "Q?\nAnswer:\nA. x\nB. y", "output": "A"}))
    source = tmp_path / "src.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DharmaError, match=r"src\.jsonl:3: "):
        read_jsonl_rows(source)
    source.write_text(lines[0] + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DharmaError, match=r"src\.jsonl:2: not valid JSON"):
        read_jsonl_rows(source)


def test_a_source_with_too_few_rows_is_an_error_not_a_short_set(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "small.jsonl", synthetic_rows("s", 5))
    config = write_config(
        tmp_path,
        {
            "dataset_size": 6,
            "data_seed": 1,
            "benchmarks": {"s": {"count": 1, "source": "small.jsonl"}},
        },
    )
    with pytest.raises(DharmaError, match=r"needs 6 rows but its source small\.jsonl holds 5"):
        build_dharma(load_config(config))


# --------------------------------------------------------------------------- Hugging Face path


def hf_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        {
            "dataset_size": 4,
            "data_seed": 1,
            "benchmarks": {"arc": {"count": 1, "source": "someone/dharma-set", "split": "eval"}},
        },
    )


def test_an_hf_source_without_datasets_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(DharmaError, match="needs the `datasets` package"):
        build_dharma(load_config(hf_config(tmp_path)))


def test_an_hf_source_offline_suggests_a_local_file(tmp_path, monkeypatch) -> None:
    def load_dataset(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(DharmaError, match="Offline"):
        build_dharma(load_config(hf_config(tmp_path)))


def test_an_hf_source_is_read_through_datasets(tmp_path, monkeypatch) -> None:
    calls = []

    def load_dataset(name, subset, split):
        calls.append((name, subset, split))
        return synthetic_rows("hf", 8)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    built = build_dharma(load_config(hf_config(tmp_path)))
    assert calls == [("someone/dharma-set", None, "eval")]
    assert len(built) == 4 and {r["subject"] for r in built} == {"arc"}


# --------------------------------------------------------------------------- CLI


def test_cli_build_writes_the_set_and_reports_it(three_sources: Path, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "set.jsonl"
    result = CliRunner().invoke(app, ["dharma", "build", str(three_sources), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == dumps_rows(build_dharma(load_config(three_sources)))
    assert hashlib.sha256(out.read_bytes()).hexdigest() in result.output
    assert "alpha" in result.output


def test_cli_build_fails_cleanly_on_a_bad_source(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text(
        '{"input": "no choices", "output": "A"}\n', encoding="utf-8"
    )
    config = write_config(
        tmp_path,
        {
            "dataset_size": 1,
            "data_seed": 1,
            "benchmarks": {"b": {"count": 1, "source": "bad.jsonl"}},
        },
    )
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["dharma", "build", str(config), "--out", str(out)])
    assert result.exit_code == 1
    assert "bad.jsonl:1:" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_any_seed_gives_a_valid_balanced_set(seed: int) -> None:
    rows = synthetic_rows("p", 40, answer=1)
    picked = [parse_row(r) for r in rows]
    out = [render_row(p, "p") for p in balance_letters(picked, derive_rng(seed, "balance", "p"))]
    counts = Counter(r["output"] for r in out)
    assert counts == {"A": 10, "B": 10, "C": 10, "D": 10}
    assert all(r["input"].count("Answer:") == 1 for r in out)


def test_cli_reports_an_unwritable_output(three_sources: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    out = blocker / "set.jsonl"
    result = CliRunner().invoke(app, ["dharma", "build", str(three_sources), "--out", str(out)])
    assert result.exit_code == 1
    assert "cannot write output" in result.output
