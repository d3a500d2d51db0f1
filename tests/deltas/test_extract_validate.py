"""Extraction and validation: every rejection names what to fix."""

from __future__ import annotations

import pytest
import torch

from mergenet.deltas.errors import DeltaValidationError
from mergenet.deltas.extract import extract_delta, extract_delta_file
from mergenet.deltas.io import load_tensors, save_tensors
from mergenet.deltas.models import ModelSource
from mergenet.deltas.sources import MemoryDelta
from mergenet.deltas.validate import (
    ValidationLimits,
    check_values,
    delta_cosine,
    validate_delta_file,
)
from mergenet.errors import TooLarge


def _model(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "w1": torch.randn(8, 4, generator=g),
        "w2": torch.randn(6, generator=g),
        "pos": torch.arange(4),
    }


def test_extract_in_memory_and_streaming_agree(tmp_path):
    base = _model()
    ft = {n: (t + 0.01 * torch.randn_like(t.float())).to(t.dtype) if t.is_floating_point() else t
          for n, t in base.items()}  # fmt: skip
    d = extract_delta(ft, base)
    assert torch.equal(d["w1"], ft["w1"] - base["w1"]) and not d["pos"].any()
    save_tensors(base, tmp_path / "base.safetensors")
    save_tensors(ft, tmp_path / "ft.safetensors")
    sha = extract_delta_file(tmp_path / "ft.safetensors", tmp_path / "base.safetensors",
                             tmp_path / "d.safetensors")  # fmt: skip
    streamed = load_tensors(tmp_path / "d.safetensors")
    assert all(torch.equal(streamed[n], d[n]) for n in d)
    report = validate_delta_file(
        tmp_path / "d.safetensors", ModelSource(tmp_path / "base.safetensors")
    )
    assert report.sha256 == sha and 0 < report.relative_norm < 0.05
    assert set(report.changed_tensors) == {"w1", "w2"}


def _write(tmp_path, tensors, name="d.safetensors"):
    p = tmp_path / name
    save_tensors(tensors, p)
    return p


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("w2"), "missing tensors"),
        (lambda d: d.update(extra=torch.zeros(1)), "does not have"),
        (lambda d: d.update(w1=torch.zeros(4, 8)), "shape"),
        (lambda d: d.update(w1=torch.zeros(8, 4, dtype=torch.float16)), "dtype"),
        (lambda d: d.update(w2=torch.full((6,), float("nan"))), "non-finite"),
        (lambda d: d.update(w1=torch.full((8, 4), 100.0)), "norm"),
        (lambda d: d.update(pos=torch.ones(4, dtype=torch.int64)), "must not change"),
    ],
)
def test_rejections_say_what_to_fix(tmp_path, mutate, message):
    base = _model()
    delta = {n: torch.zeros_like(t) for n, t in base.items()}
    delta["w1"] = delta["w1"] + 0.01
    mutate(delta)
    with pytest.raises(DeltaValidationError, match=message):
        validate_delta_file(_write(tmp_path, delta), base)


def test_size_caps(tmp_path):
    base = _model()
    p = _write(tmp_path, {n: torch.zeros_like(t) for n, t in base.items()})
    with pytest.raises(TooLarge, match="cap"):
        validate_delta_file(p, base, ValidationLimits(max_file_bytes=10))
    with pytest.raises(TooLarge, match="header"):
        validate_delta_file(p, base, ValidationLimits(max_header_bytes=10))
    with pytest.raises(TooLarge, match="tensors, over"):
        validate_delta_file(p, base, ValidationLimits(max_tensors=2))


def test_pickle_is_never_read(tmp_path):
    p = tmp_path / "evil.safetensors"
    torch.save({"w1": torch.zeros(8, 4)}, p)  # a pickle with a safetensors name
    with pytest.raises(DeltaValidationError):
        validate_delta_file(p, _model())


def test_cosine_for_near_duplicates():
    base = _model()
    d = {"w1": torch.randn(8, 4), "w2": torch.randn(6)}
    assert delta_cosine(MemoryDelta(d), MemoryDelta({k: 2 * v for k, v in d.items()})) == (
        pytest.approx(1.0)
    )
    assert delta_cosine(MemoryDelta(d), MemoryDelta({k: -v for k, v in d.items()})) == (
        pytest.approx(-1.0)
    )
    small = {k: 0.01 * v for k, v in d.items()}
    assert 0 < check_values(MemoryDelta(small), base).relative_norm < 0.5
