"""A base folder or row file the coordinator cannot use stops ``coordinator up`` with one line
naming the setting to fix (exit 2), before any version is registered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mergenet.coordinator.inputs import Inputs, check_inputs
from mergenet.errors import InvalidInput

ROW = {
    "input": "Q: 1+1?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer:",
    "output": "A",
    "subject": "plus_ten",
}


def _base(folder: Path, *, weights: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    if weights:
        (folder / "model.safetensors").write_bytes(b"")
    return folder


def _rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing base", "is not a folder"),
        ("no config", "has no config.json"),
        ("pickle only", "only safetensors checkpoints are read"),
        ("empty rows", "holds no rows"),
        ("missing rows", "cannot read"),
        ("bad json", "not JSON Lines"),
    ],
)
def test_unusable_inputs_name_the_setting(tmp_path: Path, case: str, expected: str) -> None:
    base = tmp_path / "base"
    rows = tmp_path / "dev.jsonl"
    if case == "no config":
        base.mkdir()
        (base / "model.safetensors").write_bytes(b"")
    elif case == "pickle only":
        _base(base, weights=False)
        (base / "pytorch_model.bin").write_bytes(b"")
    elif case != "missing base":
        _base(base)
    if case == "empty rows":
        rows.write_text("\n")
    elif case == "bad json":
        rows.write_text("{not json\n")
    elif case != "missing rows":
        _rows(rows, [ROW])
    with pytest.raises(InvalidInput, match=expected) as info:
        check_inputs(Inputs(base, {"dev": rows}))
    setting = "BASE_DIR" if "base" in case or case in ("no config", "pickle only") else "DEV_ROWS"
    assert f"MERGENET_COORDINATOR_{setting}" in str(info.value)


def test_usable_inputs_pass_unchanged(tmp_path: Path) -> None:
    inputs = Inputs(_base(tmp_path / "base"), {"dev": _rows(tmp_path / "dev.jsonl", [ROW])})
    assert check_inputs(inputs) is inputs


def test_coordinator_up_prints_one_line_and_registers_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MERGENET_DATA_DIR": str(data),
        "MERGENET_COORDINATOR_BASE_DIR": str(_base(tmp_path / "base")),
        "MERGENET_COORDINATOR_DEV_ROWS": str(_rows(tmp_path / "dev.jsonl", [])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mergenet.cli", "coordinator", "up", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "MERGENET_COORDINATOR_DEV_ROWS" in lines[0], done.stderr
    assert "holds no rows" in lines[0] and "Traceback" not in done.stderr
    assert not data.exists() or not any(data.iterdir()), "nothing is written"
