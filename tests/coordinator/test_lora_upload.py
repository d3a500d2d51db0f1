"""PEFT LoRA adapters are accepted next to dense deltas: signed over config + weights,
validated against the parent, stored content-addressed, and scored by the loop."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import select

from .conftest import account

pytestmark = pytest.mark.world


def _adapter(world: Any, out: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(world.base_dir, dtype="float32")
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    peft.save_pretrained(out)
    return out


def _post(client: Any, folder: Path, parent: str, nonce: int, config: bytes | None = None):  # type: ignore[no-untyped-def]
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import SigningDomain, adapter_sha256, sign_submission

    acct = account(5)
    config = config if config is not None else (folder / "adapter_config.json").read_bytes()
    sha = adapter_sha256(config, sha256_file(folder / "adapter_model.safetensors"))
    domain = SigningDomain.from_json(client.get("/api/info").json()["signing_domain"])
    form = {
        "address": acct.address,
        "parent_hash": parent,
        "nonce": str(nonce),
        "signature": sign_submission(acct, sha, parent, nonce, domain),
    }
    with (folder / "adapter_model.safetensors").open("rb") as fh:
        return client.post(
            "/api/contributions",
            data=form,
            files={"file": ("adapter_model.safetensors", fh), "adapter_config": ("c.json", config)},
        ), sha


def test_lora_adapter_upload_is_validated_stored_and_scored(
    cworld: Any, make_coordinator: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from mergenet.coordinator import models as m
    from mergenet.coordinator.app import create_app
    from mergenet.protocol.signing import adapter_folder_sha256

    coord = make_coordinator()
    client = TestClient(create_app(coord))
    parent = client.get("/api/versions/current").json()["hash"]
    folder = _adapter(cworld, tmp_path / "adapter")

    dora = json.loads((folder / "adapter_config.json").read_text()) | {"use_dora": True}
    bad, _ = _post(client, folder, parent, 1, json.dumps(dora).encode())
    assert bad.status_code == 422 and "DoRA" in bad.json()["detail"]
    assert not list(coord.store.root.joinpath("deltas").rglob("*.lora"))

    r, sha = _post(client, folder, parent, 2)
    assert r.status_code == 201, r.text
    assert sha == adapter_folder_sha256(str(folder)) == r.json()["sha256"]
    assert (coord.store.delta_path(sha) / "adapter_config.json").exists()
    again, _ = _post(client, folder, parent, 3)
    assert again.status_code == 409

    deadline = time.monotonic() + 300  # scoring takes seconds, more on a busy machine
    while time.monotonic() < deadline:
        coord.loop.step(0.2)
        with coord.factory() as s:
            c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == sha))
            if c.status != m.RECEIVED:
                break
    assert c.kind == "lora" and c.status == m.SCORED and c.score is not None
