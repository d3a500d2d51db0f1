"""Issue 19: uploads are validated in a child with CPU, memory and wall-clock limits; whatever
the file does, the caller gets a report or a 4xx kind, and the next upload still works."""

from __future__ import annotations

import json
import os
import signal
import statistics
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mergenet.deltas import sandbox
from mergenet.deltas.errors import DeltaTooLarge, DeltaValidationError
from mergenet.deltas.models import ModelSource
from mergenet.deltas.sandbox import SandboxLimits, validate_upload
from mergenet.deltas.validate import ValidationLimits, validate_delta_file

from .helpers import deep, make_adapter, raw_safetensors, write_config

LIMITS = ValidationLimits()


@pytest.fixture(scope="module")
def delta(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    base = load_file(str(base_dir / "model.safetensors"))
    out = tmp_path_factory.mktemp("delta") / "delta.safetensors"
    save_file({k: (v * 0.01 * torch.randn_like(v)).contiguous() for k, v in base.items()}, out)
    return out


def test_valid_delta_report_equals_in_process(base_dir: Path, delta: Path) -> None:
    sandbox.start()
    inside = validate_delta_file(delta, ModelSource(base_dir), LIMITS)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        report = validate_upload(delta, base_dir, LIMITS)
        times.append(time.perf_counter() - started)
    assert report == inside
    print(f"sandboxed validation: median {statistics.median(times) * 1000:.0f} ms")


def test_hostile_files_are_4xx_and_the_helper_survives(base_dir: Path, delta: Path) -> None:
    nested = raw_safetensors(delta.parent / "nested.safetensors", deep(200_000))
    with pytest.raises(DeltaValidationError, match="nests 200000 levels deep"):
        validate_upload(nested, base_dir, LIMITS)
    junk = delta.parent / "junk.safetensors"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(DeltaValidationError, match="not a safetensors file"):
        validate_upload(junk, base_dir, LIMITS)
    assert validate_upload(delta, base_dir, LIMITS).relative_norm > 0


def test_memory_limit_is_too_large(base_dir: Path, delta: Path, slow_header: Path) -> None:
    """Reading and parsing a 13 MB header needs far more than 1 MiB of heap."""
    with pytest.raises(DeltaTooLarge, match="needs more than 1 MiB"):
        validate_upload(slow_header, base_dir, LIMITS, SandboxLimits(memory_bytes=1 << 20))
    assert validate_upload(delta, base_dir, LIMITS).tensors > 0


@pytest.fixture(scope="module")
def slow_header(delta: Path) -> Path:
    """200,000 empty tensors: seconds of schema checking when the tensor cap is lifted."""
    empty = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    entries = {f"t{i}": empty for i in range(200_000)}
    return raw_safetensors(delta.parent / "slow.safetensors", json.dumps(entries).encode())


def test_cpu_limit_kills_the_child_not_the_caller(base_dir: Path, slow_header: Path) -> None:
    lifted = ValidationLimits(max_tensors=10**7)
    started = time.perf_counter()
    with pytest.raises(DeltaValidationError, match="took more than 1 s of CPU"):
        validate_upload(slow_header, base_dir, lifted, SandboxLimits(cpu_seconds=1))
    assert time.perf_counter() - started < 30


def test_wall_clock_limit_kills_the_child(base_dir: Path, slow_header: Path) -> None:
    lifted = ValidationLimits(max_tensors=10**7)
    with pytest.raises(DeltaValidationError, match=r"took more than 0\.5 s"):
        validate_upload(slow_header, base_dir, lifted, SandboxLimits(wall_seconds=0.5))


def test_a_killed_helper_is_restarted(base_dir: Path, delta: Path) -> None:
    sandbox.start()
    proc = sandbox._HELPER.proc
    assert proc is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert validate_upload(delta, base_dir, LIMITS).tensors > 0


def test_lora_adapters_are_validated_in_the_child(tmp_path: Path, base_dir: Path) -> None:
    folder = tmp_path / "adapter"
    saved = make_adapter(folder, base_dir)
    lifted = ValidationLimits(max_relative_norm=100.0)  # random factors
    assert validate_upload(folder, base_dir, lifted).relative_norm > 0
    write_config(folder, saved | {"rank_pattern": {"(.|.|.)*Z": 2}})
    started = time.perf_counter()
    with pytest.raises(DeltaValidationError, match="is not a module name"):
        validate_upload(folder, base_dir, lifted)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("code", "kind", "message"),
    [
        (-signal.SIGXCPU, DeltaValidationError, "s of CPU"),
        (-signal.SIGALRM, DeltaValidationError, "took more than 120 s"),
        (-signal.SIGSEGV, DeltaTooLarge, "memory limit"),
        (1, DeltaValidationError, "exited with 1"),
    ],
)
def test_child_deaths_map_to_error_kinds(code: int, kind: type, message: str) -> None:
    with pytest.raises(kind, match=message):
        sandbox._result({"exit": code}, SandboxLimits())
