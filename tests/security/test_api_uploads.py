"""Issue 19, through the live API: every hostile or malformed upload is a 4xx whose message
says what to fix, and nothing is written (database rows, stored files, incoming folder).

Before this change: the nested header and adapter config segfaulted the coordinator, the
``(.|.|.)*Z`` rank pattern froze it for 30 s+, five inputs answered 500, and the duplicate key
and the unchecked ``target_modules`` were accepted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from sqlalchemy import select

from ..coordinator.conftest import account, signed_form
from .helpers import deep, raw_safetensors
from .test_signatures import high_s_twin

pytestmark = pytest.mark.world


def _db_dump(coord: Any) -> dict[str, list[tuple]]:
    from mergenet.db import Base

    with coord.engine.connect() as conn:
        return {
            t.name: sorted(map(tuple, conn.execute(select(t)).all()), key=repr)
            for t in Base.metadata.sorted_tables
        }


def _dense_header(base: dict[str, torch.Tensor]) -> tuple[dict[str, Any], int]:
    """The world base's header entries with honest offsets, and the data length."""
    header, pos = {}, 0
    for name, t in base.items():
        n = t.numel() * t.element_size()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [pos, pos + n]}
        pos += n
    return header, pos


def _adapter(world: Any, out: Path) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(world.base_dir, dtype="float32")
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
    with torch.no_grad():  # PEFT starts B at zero: an all-zero delta would be refused
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    peft.save_pretrained(out)
    return json.loads((out / "adapter_config.json").read_text())


def _post_adapter(client: Any, weights: Path, config: bytes, parent: str, nonce: int) -> Any:
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import SigningDomain, adapter_sha256, sign_submission

    acct = account(7)
    sha = adapter_sha256(config, sha256_file(weights))
    domain = SigningDomain.from_json(client.get("/api/info").json()["signing_domain"])
    form = {
        "address": acct.address,
        "parent_hash": parent,
        "nonce": str(nonce),
        "signature": sign_submission(acct, sha, parent, nonce, domain),
    }
    with weights.open("rb") as fh:
        files = {"file": ("adapter_model.safetensors", fh), "adapter_config": ("c.json", config)}
        return client.post("/api/contributions", data=form, files=files)


def test_hostile_uploads_are_4xx_with_a_message_and_write_nothing(
    cworld: Any, make_coordinator: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app

    coord = make_coordinator()
    client = TestClient(create_app(coord))
    parent = client.get("/api/versions/current").json()["hash"]
    base = load_file(cworld.base_dir / "model.safetensors")
    header, data_len = _dense_header(base)
    zeros = b"\0" * data_len
    first = next(iter(header))

    dense: dict[str, tuple[Path, int, str]] = {
        "header nested 200,000 deep": (
            raw_safetensors(tmp_path / "deep.st", b'{"a":' + deep(200_000) + b"}"),
            422,
            "nests 200001 levels deep",
        ),
        "__metadata__ as a list": (
            raw_safetensors(tmp_path / "m1.st", {"__metadata__": ["x"]} | header, zeros),
            422,
            "__metadata__ must be a JSON object of strings to strings",
        ),
        "__metadata__ with non-string values": (
            raw_safetensors(tmp_path / "m2.st", {"__metadata__": {"n": 3}} | header, zeros),
            422,
            "__metadata__ must be a JSON object of strings to strings",
        ),
        "duplicate header key": (
            raw_safetensors(
                tmp_path / "dup.st",
                json.dumps(header)[:-1].encode()
                + f', "{first}": {json.dumps(header[first])}}}'.encode(),
                zeros,
            ),
            422,
            f"has the key '{first}' twice",
        ),
    }
    folder = tmp_path / "adapter"
    cfg = _adapter(cworld, folder)
    weights = folder / "adapter_model.safetensors"
    lora: dict[str, tuple[bytes, int, str]] = {
        "adapter config nested 200,000 deep": (deep(200_000), 422, "nests 200000 levels deep"),
        "adapter config is a JSON list": (json.dumps([cfg]).encode(), 422, "not a list"),
        "r: 0": (json.dumps(cfg | {"r": 0}).encode(), 422, "r: Input should be greater"),
        "invalid regex in rank_pattern": (
            json.dumps(cfg | {"rank_pattern": {"q_proj(": 2}}).encode(),
            422,
            "is not a module name",
        ),
        "catastrophic regex (.|.|.)*Z": (
            json.dumps(cfg | {"rank_pattern": {"(.|.|.)*Z": 2}}).encode(),
            422,
            "regular expressions are not accepted",
        ),
        "target_modules not in the parent": (
            json.dumps(cfg | {"target_modules": ["q_proj", "wq"]}).encode(),
            422,
            "target module 'wq' is not a module of the parent",
        ),
    }

    db_before, store_before = _db_dump(coord), coord.store.snapshot()
    seen: dict[str, tuple[int, str, float]] = {}
    for n, (name, (path, _, _)) in enumerate(dense.items()):
        started = time.perf_counter()
        with path.open("rb") as fh:
            r = client.post(
                "/api/contributions",
                data=signed_form(account(6), path, parent, 100 + n),
                files={"file": ("delta.safetensors", fh)},
            )
        seen[name] = (r.status_code, r.json().get("detail"), time.perf_counter() - started)
    for n, (name, (config, _, _)) in enumerate(lora.items()):
        started = time.perf_counter()
        r = _post_adapter(client, weights, config, parent, 200 + n)
        seen[name] = (r.status_code, r.json().get("detail"), time.perf_counter() - started)
    high_s = tmp_path / "high_s.st"
    high_s.write_bytes(zeros[:8] + b"not a delta")  # rejected at the signature, before parsing
    form = signed_form(account(6), high_s, parent, 400)
    started = time.perf_counter()
    with high_s.open("rb") as fh:
        r = client.post(
            "/api/contributions",
            data=form | {"signature": high_s_twin(form["signature"])},
            files={"file": ("delta.safetensors", fh)},
        )
    seen["high-s twin of a valid signature"] = (
        r.status_code,
        r.json().get("detail"),
        time.perf_counter() - started,
    )
    print("\n" + "\n".join(f"{k}: {s} {t:.2f}s {d}" for k, (s, d, t) in seen.items()))

    expected = {k: v[1:] for k, v in dense.items()} | {k: v[1:] for k, v in lora.items()}
    expected["high-s twin of a valid signature"] = (401, "high s value")
    for name, (status, words) in expected.items():
        got, detail, _ = seen[name]
        assert got == status, f"{name}: {got} {detail}"
        assert isinstance(detail, str) and words in detail, f"{name}: {detail}"
    assert seen["catastrophic regex (.|.|.)*Z"][2] < 5.0  # one HTTP round trip, no regex run
    assert _db_dump(coord) == db_before
    assert coord.store.snapshot() == store_before
    assert not any((coord.store.root / "incoming").iterdir())
    # and the coordinator still takes an honest adapter afterwards
    ok = _post_adapter(client, weights, (folder / "adapter_config.json").read_bytes(), parent, 300)
    assert ok.status_code == 201, ok.text
