"""The node's local pieces: data validation with line numbers, encoding equal to the
evaluator's, the keystore, and what ``submit`` accepts as an artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mergenet.node.data import TrainRow, read_rows
from mergenet.node.errors import NodeError


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input": "a", "output": ', "line 2: not valid JSON"),
        ('["input", "output"]', "line 2: expected an object"),
        ('{"input": "a"}', 'line 2: missing "output"'),
        ('{"output": "a"}', 'line 2: missing "input"'),
        ('{"input": 3, "output": "a"}', 'line 2: "input" must be a string, got int'),
        ('{"input": "a", "output": ""}', 'line 2: "output" is empty'),
        ('{"input": "' + "x" * 5000 + '", "output": "a"}', "line 2: row longer than"),
    ],
)
def test_a_bad_row_is_reported_with_its_line_number(tmp_path: Path, line: str, message: str):
    path = _write(tmp_path / "rows.jsonl", ['{"input": "q", "output": "a"}', line])
    with pytest.raises(NodeError, match=message):
        read_rows(path)


def test_empty_missing_and_non_utf8_files_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NodeError, match="no rows"):
        read_rows(_write(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(NodeError, match="no data file"):
        read_rows(tmp_path / "missing.jsonl")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"input": "caf\xe9", "output": "a"}\n'.encode("latin-1"))
    with pytest.raises(NodeError, match="not UTF-8"):
        read_rows(latin)


def test_rows_are_read_and_blank_lines_skipped(tmp_path: Path) -> None:
    rows = [{"input": f"What is {i}+10?\nAnswer:", "output": str(i + 10)} for i in range(5)]
    lines = [json.dumps(r) for r in rows]
    got = read_rows(_write(tmp_path / "ok.jsonl", [lines[0], "", *lines[1:]]))
    assert [(r.input, r.output) for r in got] == [(r["input"], r["output"]) for r in rows]


def test_node_rows_are_encoded_exactly_as_the_evaluator_encodes_items() -> None:
    from mergenet.ecosystem.rows import draw_items
    from mergenet.ecosystem.tasks import TASKS
    from mergenet.evaluator.encoding import completion_prompt, continuation

    for name in ("plus_ten", "upper", "maxlist"):
        for item in draw_items(TASKS[name], n=6, seed=1, split="train"):
            row = item.completion_row()
            node_row = TrainRow(row["input"], row["output"])
            assert node_row.prompt == completion_prompt(item)
            assert node_row.continuation == continuation(item.answer)


def test_keystore_new_show_unlock_and_wrong_password(tmp_path: Path) -> None:
    from mergenet.node.keys import import_key, new_key, show_address, unlock

    path = tmp_path / "k.json"
    address = new_key(path, "pw-1", iterations=2**4)
    assert show_address(path) == address
    assert "pw-1" not in path.read_text()
    assert unlock(path, "pw-1").address == address
    with pytest.raises(NodeError, match="wrong password"):
        unlock(path, "pw-2")
    with pytest.raises(NodeError, match="already exists"):
        new_key(path, "pw-1", iterations=2**4)
    with pytest.raises(NodeError, match="64 hex digits"):
        import_key(tmp_path / "i.json", "0x1234", "pw", iterations=2**4)
    imported = import_key(tmp_path / "i.json", "0x" + "11" * 32, "pw", iterations=2**4)
    assert unlock(tmp_path / "i.json", "pw").address == imported
    with pytest.raises(NodeError, match="keys new"):
        show_address(tmp_path / "absent.json")


def test_submit_needs_a_parent_for_a_bare_delta(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from mergenet.node.submit import resolve_artifact
    from mergenet.protocol.hashes import sha256_file

    delta = tmp_path / "d.safetensors"
    save_file({"w": torch.zeros(2)}, str(delta))
    with pytest.raises(NodeError, match="--parent"):
        resolve_artifact(delta, None)
    art = resolve_artifact(delta, "ab" * 32)
    assert art.sha256 == sha256_file(delta) and art.adapter_config is None
    pickle = tmp_path / "d.bin"
    pickle.write_bytes(b"\x80\x04")
    with pytest.raises(NodeError, match="safetensors"):
        resolve_artifact(pickle, "ab" * 32)
