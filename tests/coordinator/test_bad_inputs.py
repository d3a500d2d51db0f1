"""The bad-input corpus: every case is a 4xx with a message, and nothing is written.

One valid contribution is recorded first (so reused nonces and copies have something to
collide with); then the database (every row of every table) and the artifact store (every
file) are snapshotted, all cases are posted through the HTTP API, and both must be unchanged.
"""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from sqlalchemy import select

from .conftest import account, local_domain, signed_form

pytestmark = pytest.mark.world

Case = Callable[[Path, dict[str, Any]], tuple[Path | None, dict[str, str]]]


def _db_dump(coord: Any) -> dict[str, list[tuple]]:
    from mergenet.db import Base

    out = {}
    with coord.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out[table.name] = sorted(map(tuple, conn.execute(select(table)).all()), key=repr)
    return out


def _raw_safetensors(path: Path, header: Any, data: bytes = b"", hlen: int | None = None) -> Path:
    blob = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(blob) if hlen is None else hlen) + blob + data)
    return path


def test_bad_input_corpus_is_all_4xx_and_writes_nothing(
    cworld: Any, make_coordinator: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app

    coord = make_coordinator()
    client = TestClient(create_app(coord))
    parent = client.get("/api/versions/current").json()["hash"]
    good = load_file(cworld.delta_path(cworld.contributor_names[0]))
    base = load_file(cworld.base_dir / "model.safetensors")
    names = sorted(good)

    # -- one valid contribution first --------------------------------------------------
    first = cworld.delta_path(cworld.contributor_names[0])
    alice = account(0)
    with first.open("rb") as fh:
        r = client.post(
            "/api/contributions",
            data=signed_form(alice, first, parent, 1),
            files={"file": ("delta.safetensors", fh)},
        )
    assert r.status_code == 201, r.text
    second_src = cworld.delta_path(cworld.contributor_names[1])

    db_before = _db_dump(coord)
    store_before = coord.store.snapshot()
    n = iter(range(100, 10_000))
    bob = account(1)

    def save(tensors: dict[str, torch.Tensor], name: str) -> Path:
        p = tmp_path / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(p))
        return p

    def signed(path: Path, **over: Any) -> dict[str, str]:
        acct = over.pop("acct", bob)
        form = signed_form(acct, path, over.pop("sign_parent", parent), over.pop("nonce", next(n)))
        return form | over

    def mutated(fn: Callable[[dict[str, torch.Tensor]], None], name: str) -> Path:
        t = {k: v.clone() for k, v in good.items()}
        fn(t)
        return save(t, name)

    big = names[0]
    oversize = tmp_path / "oversize.safetensors"
    with oversize.open("wb") as fh:
        fh.truncate(coord.submissions.upload_cap() + 1)
    torch_zip = tmp_path / "checkpoint.pt"
    torch.save(good, torch_zip)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    other_sig = signed_form(account(2), second_src, parent, 5)
    near = mutated(
        lambda t: [t.__setitem__(k, t[k] * 1.001 + 1e-7 * torch.randn_like(t[k])) for k in t],
        "near",
    )
    spec = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}

    cases: dict[str, tuple[Path | None, dict[str, str]]] = {}

    def case(name: str, path: Path | None, form: dict[str, str] | None = None) -> None:
        cases[name] = (path, form if form is not None else signed(path))  # type: ignore[arg-type]

    case("random bytes", _w(tmp_path / "random.bin", bytes(range(256)) * 40))
    case("empty file", _w(tmp_path / "empty.bin", b""))
    case("truncated safetensors", truncated)
    case("header length past the end", _raw_safetensors(tmp_path / "h1", {}, hlen=2**40))
    case("header not json", _raw_safetensors(tmp_path / "h2", b"{not json"))
    case("header is a list", _raw_safetensors(tmp_path / "h3", [1, 2]))
    case(
        "unknown dtype", _raw_safetensors(tmp_path / "h4", {"w": spec | {"dtype": "F7"}}, b"\0" * 8)
    )
    case(
        "offsets with a gap",
        _raw_safetensors(tmp_path / "h5", {"w": spec | {"data_offsets": [4, 12]}}, b"\0" * 12),
    )
    case("offsets past the end", _raw_safetensors(tmp_path / "h6", {"w": spec}, b"\0" * 4))
    case("pickle", _w(tmp_path / "p.pkl", pickle.dumps({"a": [1.0, 2.0]}, protocol=4)))
    case("pickle protocol 2", _w(tmp_path / "p2.pkl", pickle.dumps([1, 2, 3], protocol=2)))
    case("torch.save zip checkpoint", torch_zip)
    case("missing tensor", mutated(lambda t: t.pop(big), "missing"))
    case("extra tensor", mutated(lambda t: t.__setitem__("extra.weight", torch.zeros(3)), "extra"))
    case("renamed tensor", mutated(lambda t: t.__setitem__("x." + big, t.pop(big)), "renamed"))
    case("wrong shape", mutated(lambda t: t.__setitem__(big, t[big].reshape(-1)), "shape"))
    case("wrong dtype", mutated(lambda t: t.__setitem__(big, t[big].half()), "dtype"))
    case("bfloat16 dtype", mutated(lambda t: t.__setitem__(big, t[big].bfloat16()), "bf16"))
    case("NaN", mutated(lambda t: t[big].view(-1).__setitem__(0, float("nan")), "nan"))
    case("+Inf", mutated(lambda t: t[big].view(-1).__setitem__(0, float("inf")), "inf"))
    case("-Inf", mutated(lambda t: t[names[-1]].view(-1).__setitem__(3, float("-inf")), "ninf"))
    case("huge norm", save({k: base[k] * 10 for k in base}, "huge"))
    case("weights instead of a delta", save(base, "weights"))
    case("all zeros", save({k: torch.zeros_like(v) for k, v in good.items()}, "zeros"))
    case("oversize", oversize)
    case("exact copy", first)
    case("near copy", near)
    case("reused nonce", second_src, signed(second_src, acct=alice, nonce=1))
    case("forged signature (other key)", second_src, other_sig | {"address": bob.address})
    case("signature over another file", second_src, signed(first))
    case(
        "signature for another chain",
        second_src,
        signed(second_src)
        | {
            "signature": signed_form(bob, second_src, parent, 77, local_domain(1))["signature"],
            "nonce": "77",
        },
    )
    case(
        "signature for another network",
        second_src,
        signed(second_src)
        | {
            "signature": signed_form(
                bob, second_src, parent, 78, local_domain(network_id="5a" * 32)
            )["signature"],
            "nonce": "78",
        },
    )
    case("malformed signature", second_src, signed(second_src) | {"signature": "0x1234"})
    case("wrong parent", second_src, signed(second_src, sign_parent="ab" * 32))
    case("malformed parent", second_src, signed(second_src) | {"parent_hash": "current"})
    case("malformed address", second_src, signed(second_src) | {"address": "0xnothex"})
    case("negative nonce", second_src, signed(second_src) | {"nonce": "-3"})
    case("nonce not an integer", second_src, signed(second_src) | {"nonce": "one"})
    case(
        "missing signature field",
        second_src,
        {k: v for k, v in signed(second_src).items() if k != "signature"},
    )
    case("missing file", None, signed(second_src))
    assert len(cases) >= 30

    statuses = {}
    for name, (path, form) in cases.items():
        if path is None:
            r = client.post("/api/contributions", data=form)
        else:
            with path.open("rb") as fh:
                r = client.post(
                    "/api/contributions", data=form, files={"file": ("delta.safetensors", fh)}
                )
        statuses[name] = r.status_code
        detail = r.json().get("detail")
        assert 400 <= r.status_code < 500, f"{name}: {r.status_code} {r.text[:300]}"
        assert detail, f"{name}: no message"
    print(json.dumps(statuses, indent=1))
    assert _db_dump(coord) == db_before
    assert coord.store.snapshot() == store_before
    assert not any((coord.store.root / "incoming").iterdir())
    # the messages say what to fix (spot checks)
    assert statuses["forged signature (other key)"] == 401
    assert statuses["reused nonce"] == 409
    assert statuses["exact copy"] == 409
    assert statuses["oversize"] == 413
    assert statuses["pickle"] == statuses["pickle protocol 2"] == 415  # not safetensors at all


def _w(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
