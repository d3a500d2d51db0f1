"""Each family through a coordinator: its API, upload validation, scoring loop and version
archive, in process (a ``Coordinator`` behind a ``TestClient``, evaluations in this process).

Per family: the coordinator opens on a tiny random checkpoint of that family (its own small
Dharma row sets); ``node pull``'s download unpacks the current version's archive and checks its
hash; a full fine-tune and a LoRA adapter made with ``node finetune`` are signed and uploaded
as ``node submit`` uploads them; the loop scores both. 1.4 s (Qwen2) to 14 s (Gemma-2, the
first of the module: imports) a family here, on a loaded 2-core machine. The live server path
(``mergenet coordinator up`` and the ``mergenet node`` commands as processes) is
tests/node/test_contribute_e2e.py's, on the world's Llama.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .families import FAMILIES, build_tokenizer, save_parent
from .test_families import _finetune

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def _rows(folder: Path) -> dict[str, Path]:
    from mergenet.ecosystem.rows import draw_items
    from mergenet.ecosystem.tasks import TASKS

    folder.mkdir()
    out = {}
    for split in ("dev", "heldout"):
        path = folder / f"{split}.jsonl"
        items = [
            it
            for t in ("add", "reverse", "successor")
            for it in draw_items(TASKS[t], n=12, seed=3, split=split)
        ]
        path.write_text("".join(json.dumps(it.dharma_row()) + "\n" for it in items))
        out[split] = path
    return out


def _upload(client: Any, artifact: Path, parent: str, nonce: int) -> str:
    from eth_account import Account

    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import SigningDomain, adapter_sha256, sign_submission

    acct = Account.from_key((7).to_bytes(32, "big"))  # a test key, never a real one
    lora = artifact.is_dir()
    weights = artifact / "adapter_model.safetensors" if lora else artifact
    config = (artifact / "adapter_config.json").read_bytes() if lora else None
    sha = adapter_sha256(config, sha256_file(weights)) if config else sha256_file(weights)
    domain = SigningDomain.from_json(client.get("/api/info").json()["signing_domain"])
    form = {
        "address": acct.address,
        "parent_hash": parent,
        "nonce": str(nonce),
        "signature": sign_submission(acct, sha, parent, nonce, domain),
    }
    files: dict[str, Any] = {"file": (weights.name, weights.read_bytes())}
    if config is not None:
        files["adapter_config"] = ("adapter_config.json", config)
    r = client.post("/api/contributions", data=form, files=files)
    assert r.status_code == 201, r.text
    return str(r.json()["sha256"])


@pytest.mark.parametrize(
    "family",
    sorted(FAMILIES),
)
def test_a_family_is_pulled_uploaded_and_scored(
    family: str, tokenizer: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from mergenet.config import Settings
    from mergenet.coordinator.app import create_app
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings
    from mergenet.node.client import CoordinatorClient
    from mergenet.node.pull import _download

    parent_dir = save_parent(family, tokenizer, tmp_path / "parent")
    rows = _rows(tmp_path / "rows")
    settings = CoordinatorSettings(
        base_dir=parent_dir, dev_rows=rows["dev"], heldout_rows=rows["heldout"], workers=0
    )
    coord = Coordinator(Settings(data_dir=tmp_path / "data"), settings).open()
    try:
        client = TestClient(create_app(coord))
        parent = client.get("/api/versions/current").json()["hash"]
        node = CoordinatorClient("http://testserver")
        node._http = client  # type: ignore[assignment]  # the node's download, in process
        _download(node, parent, tmp_path / "pulled", lambda done, total: None)
        assert (tmp_path / "pulled" / "config.json").exists()

        shas = [
            _upload(
                client,
                _finetune(tmp_path / "pulled", tmp_path / kind, kind == "lora").artifact,
                parent,
                nonce,
            )
            for nonce, kind in enumerate(["full", "lora"], start=1)
        ]
        deadline = time.monotonic() + 300
        got: dict[str, Any] = {}
        while time.monotonic() < deadline and len(got) < len(shas):
            coord.loop.step(0.2)
            for sha in shas:
                c = client.get(f"/api/contributions/{sha}").json()
                if c["status"] not in ("received", "queued", "scoring"):
                    got[sha] = c
        assert len(got) == len(shas), "the loop did not score both contributions in time"
        for c in got.values():
            assert c["status"] == "scored" and c["score"] is not None, c
    finally:
        coord.close()
