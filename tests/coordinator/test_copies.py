"""Copies detected in task-vector space (coordinator/copies.py).

Synthetic sketches check the index itself (fast, no world); the world tests submit the eight
honest world deltas and then every attack of ``benchmarks/copy_detection.py`` through the
submission service: each is a 409 that names the delta it copies; a refined resubmission by
the same address is accepted; the index survives a restart (from its files, and from the
stored deltas when a sketch file is missing or torn).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from .conftest import account, signed_form

Delta = dict[str, torch.Tensor]


def _random_delta(seed: int, shared: Delta | None = None, share: float = 0.0) -> Delta:
    g = torch.Generator().manual_seed(seed)
    shapes = {"lm_head.weight": (64, 48), "attn.q.weight": (48, 48), "mlp.up.weight": (96, 48)}
    out = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    if shared is not None:
        out = {k: (1 - share) * v + share * shared[k] for k, v in out.items()}
    return out


def _index(tmp_path: Path, deltas: list[Delta]) -> Any:
    from mergenet.coordinator.artifacts import ArtifactStore
    from mergenet.coordinator.copies import CopyIndex
    from mergenet.deltas.sketch import sketch_delta

    index = CopyIndex(ArtifactStore(tmp_path / "store"))
    for i, d in enumerate(deltas):
        index.add(f"{i:064x}", f"0x{i:040x}", sketch_delta(d, k=256))
    return index


def test_the_index_explains_copies_and_not_independent_deltas(tmp_path: Path) -> None:
    from mergenet.deltas.sketch import sketch_delta

    deltas = [_random_delta(i) for i in range(6)]
    index = _index(tmp_path, deltas)
    v = deltas[2]
    g = torch.Generator().manual_seed(99)
    attacks: dict[str, Delta] = {
        "scaled": {k: -3 * t for k, t in v.items()},
        "noise 0.95": {k: t + 0.33 * torch.randn(t.shape, generator=g) for k, t in v.items()},
        "head zeroed": {k: t * 0 if k.startswith("lm_head") else t for k, t in v.items()},
        "average": {k: (t + deltas[3][k]) / 2 for k, t in v.items()},
    }
    for name, d in attacks.items():
        verdict = index.check(sketch_delta(d, k=256), "0xattacker")
        assert verdict.is_copy, (name, verdict)
        assert verdict.sources[0][0] == f"{2:064x}" or name == "average", (name, verdict)
        assert f"{2:064x}" in verdict.message()
    noisy = index.check(sketch_delta(attacks["noise 0.95"], k=256), "0xattacker").explained
    assert 0.85 < noisy < 0.95  # cos 0.95 → ≈ 0.90
    fresh = index.check(sketch_delta(_random_delta(50), k=256), "0xsomeone")
    assert not fresh.is_copy and fresh.explained < 0.1  # 12 regressors of 256: ≈ 5 % by chance
    # the same address's own earlier delta is not "someone else's"
    own = index.check(sketch_delta(v, k=256), f"0x{2:040x}")
    assert not own.is_copy and own.explained < 0.1


def _submit(coord: Any, path: Path, who: int, nonce: int, parent: str) -> Any:
    from mergenet.coordinator.submissions import Upload

    with path.open("rb") as fh:
        return coord.submissions.submit(
            Upload(**signed_form(account(who), path, parent, nonce)), fh
        )


def _save(d: Delta, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in d.items()}, str(path))
    return path


def _attacks(deltas: list[Delta], i: int) -> dict[str, Callable[[], Delta]]:
    """The benchmark's attack builders, each on delta ``i`` (the benchmark is not a package)."""
    import importlib.util

    path = Path(__file__).parents[2] / "benchmarks" / "copy_detection.py"
    spec = importlib.util.spec_from_file_location("copy_detection_bench", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    g = torch.Generator().manual_seed(i)
    return {name: (lambda fn=fn: fn(deltas, i, g)) for name, fn in bench.ATTACKS.items()}


@pytest.mark.world
def test_attacks_are_409_naming_the_original_and_honest_deltas_pass(
    cworld: Any, make_coordinator: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient
    from safetensors.torch import load_file

    from mergenet.coordinator.app import create_app
    from mergenet.coordinator.state import current_version
    from mergenet.coordinator.submissions import UploadConflict
    from mergenet.deltas.sketch import DeltaSketch

    data_dir = tmp_path / "data"
    coord = make_coordinator(data_dir=data_dir)
    with coord.factory() as s:
        parent = current_version(s).hash
    names = cworld.contributor_names
    shas = [_submit(coord, cworld.delta_path(n), i, 1, parent).sha256 for i, n in enumerate(names)]
    deltas = [load_file(cworld.delta_path(n)) for n in names]
    victim = 1
    for j, (label, build) in enumerate(_attacks(deltas, victim).items()):
        path = _save(build(), tmp_path / f"attack{j}.safetensors")
        with pytest.raises(UploadConflict) as err:
            _submit(coord, path, 20 + j, 1, parent)
        assert shas[victim] in str(err.value), (label, str(err.value))
    # through HTTP: a 409 with the message
    path = _save(_attacks(deltas, 3)["lm_head zeroed"](), tmp_path / "http.safetensors")
    with path.open("rb") as fh:
        r = TestClient(create_app(coord)).post(
            "/api/contributions",
            data=signed_form(account(40), path, parent, 1),
            files={"file": ("delta.safetensors", fh)},
        )
    assert r.status_code == 409 and shas[3] in r.json()["detail"], r.text
    # the same address refines its own delta: not a copy of someone else
    g = torch.Generator().manual_seed(5)
    refined = {k: 1.1 * v + 0.002 * torch.randn(v.shape, generator=g) for k, v in deltas[0].items()}
    assert _submit(coord, _save(refined, tmp_path / "refined.safetensors"), 0, 2, parent)
    coord.close()

    # a restart: sketches come back from their files; a missing or torn one from the delta
    coord.store.sketch_path(shas[4]).unlink()
    coord.store.sketch_path(shas[5]).write_bytes(b"torn")
    again = make_coordinator(data_dir=data_dir)
    for k, target in enumerate((4, 5, 6)):
        half = _attacks(deltas, target)["Sybil half δ/2"]()
        half_path = _save(half, tmp_path / f"half{k}.safetensors")
        with pytest.raises(UploadConflict, match=shas[target]):
            _submit(again, half_path, 50 + k, 1, parent)
    assert len(again.submissions.copies) == len(names) + 1
    assert again.store.sketch_path(shas[4]).exists()
    rebuilt = DeltaSketch.from_bytes(again.store.sketch_path(shas[5]).read_bytes())
    assert set(rebuilt.tensors) == set(deltas[5])
