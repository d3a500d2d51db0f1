"""Workers fetch artifacts from a real coordinator over HTTP by content hash.

A real coordinator (FastAPI under uvicorn, SQLite, its artifact store) on a loopback port,
holding a tiny random Llama as its base version, a dense delta, a LoRA adapter folder and a
row set. The worker-side cache downloads each by hash, checks it, reuses it, and refuses
what does not hash to what it asked for. Also: ``mergenet worker`` exits 2 with one clear
line when Redis or the coordinator is unreachable.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from mergenet.workers.fetch import ArtifactCache, FetchError, IntegrityError, _extract_flat


def _tiny_llama(folder: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)


def _dense_delta(path: Path, base: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(base / "model.safetensors")
    save_file({k: torch.full_like(v, 1e-3) for k, v in state.items()}, path)


@pytest.fixture(scope="module")
def coordinator(tmp_path_factory):
    """A real coordinator app on a free loopback port; yields (url, coordinator, hashes)."""
    import uvicorn

    from mergenet.config import Settings
    from mergenet.coordinator.app import create_app
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import adapter_folder_sha256

    from .conftest import _free_port

    root = tmp_path_factory.mktemp("fetch-coordinator")
    base = root / "base"
    _tiny_llama(base)
    rows = root / "dev.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"input": f"q{i}\nAnswer:", "output": "A", "subject": "t"}) + "\n"
            for i in range(8)
        )
    )
    coord = Coordinator(
        Settings(data_dir=root / "data", database_url=None),
        CoordinatorSettings(base_dir=base, dev_rows=rows, workers=0),
    ).open()
    dense = root / "dense.safetensors"
    _dense_delta(dense, base)
    dense_sha = sha256_file(dense)
    coord.store.put_delta(dense, dense_sha)
    adapter = root / "adapter.lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 2, "lora_alpha": 4}')
    _dense_delta(adapter / "adapter_model.safetensors", base)
    lora_sha = adapter_folder_sha256(str(adapter))
    coord.store.put_delta(adapter, lora_sha)
    from mergenet.coordinator.state import current_version

    with coord.factory() as s:
        version = current_version(s).hash

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(coord), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield (
            url,
            coord,
            {
                "version": version,
                "dense": dense_sha,
                "lora": lora_sha,
            },
        )
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        coord.close()
    assert not thread.is_alive()


def test_fetches_each_artifact_by_hash_and_reuses_the_cache(coordinator, tmp_path) -> None:
    from mergenet.deltas.models import ModelSource
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import adapter_folder_sha256

    url, _, h = coordinator
    cache = ArtifactCache(url, tmp_path / "cache")
    try:
        folder = cache.version_dir(h["version"])
        assert ModelSource(folder).sha256() == h["version"]
        assert (folder / "config.json").exists()
        dense = cache.delta_path(h["dense"])
        assert dense.suffix == ".safetensors" and sha256_file(dense) == h["dense"]
        lora = cache.delta_path(h["lora"])
        assert lora.is_dir() and adapter_folder_sha256(str(lora)) == h["lora"]
        assert cache.downloads == 3
        # a second cache object on the same folder (another worker process) downloads nothing
        again = ArtifactCache(url, tmp_path / "cache")
        assert again.version_dir(h["version"]) == folder
        assert again.delta_path(h["dense"]) == dense
        assert again.delta_path(h["lora"]) == lora
        assert again.downloads == 0
        again.close()
        assert not any((tmp_path / "cache" / "tmp").iterdir()), "temporary downloads left"
    finally:
        cache.close()


def test_a_corrupted_artifact_is_refused_and_not_cached(coordinator, tmp_path) -> None:
    url, coord, h = coordinator
    stored = coord.store.delta_path(h["dense"])
    original = stored.read_bytes()
    cache = ArtifactCache(url, tmp_path / "cache")
    try:
        stored.write_bytes(original[:-4] + b"\0\0\0\0")  # bit rot on the coordinator's disk
        with pytest.raises(IntegrityError, match=rf"not the requested {h['dense']}"):
            cache.delta_path(h["dense"])
        assert not list((tmp_path / "cache" / "deltas").rglob("*.safetensors"))
        stored.write_bytes(original)
        assert cache.delta_path(h["dense"]).exists()  # the next try fetches the good bytes
    finally:
        stored.write_bytes(original)
        cache.close()


def test_unknown_and_malformed_hashes_get_clear_errors(coordinator, tmp_path) -> None:
    url, _, _ = coordinator
    cache = ArtifactCache(url, tmp_path / "cache")
    try:
        with pytest.raises(FetchError, match="404: no delta with sha256 " + "ab" * 32):
            cache.delta_path("ab" * 32)
        with pytest.raises(FetchError, match="must be a sha256"):
            cache.delta_path("../../etc/passwd")
    finally:
        cache.close()
    assert httpx.get(f"{url}/api/deltas/nothex").status_code == 422
    with pytest.raises(FetchError, match=r"GET http://127\.0\.0\.1:9/api/deltas/\w+ failed"):
        ArtifactCache("http://127.0.0.1:9", tmp_path / "c2", retry_seconds=0).delta_path("cd" * 32)


def test_no_route_serves_the_row_files(coordinator) -> None:
    """Issue 16: the dev and held-out files (and any rows) are not served by hash or at all."""
    from mergenet.protocol.hashes import sha256_file

    url, coord, _ = coordinator
    for path in coord.inputs.row_sets.values():
        assert httpx.get(f"{url}/api/rows/{sha256_file(path)}").status_code == 404


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("members", "error"),
    [
        ({"m/pytorch_model.bin": b"x"}, "refusing pickle"),
        ({"m/sub/config.json": b"{}"}, "unexpected archive member"),
        ({"../evil.json": b"{}"}, "unexpected archive member"),
        ({"a/x.json": b"{}", "b/y.json": b"{}"}, "2 folders"),
    ],
)
def test_archives_yield_one_folder_of_plain_non_pickle_files(tmp_path, members, error) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar(members))
    with pytest.raises(FetchError, match=error):
        _extract_flat(archive, tmp_path / "out", "test archive")
    assert not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


def _worker(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGENET_")}
    return subprocess.run(
        [sys.executable, "-m", "mergenet.cli", "worker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.redis
def test_worker_exits_2_with_one_line_when_redis_or_coordinator_is_unreachable(
    coordinator, redis_url
) -> None:
    url, _, _ = coordinator
    no_redis = _worker("--coordinator", url, "--redis-url", "redis://:hunter2@127.0.0.1:9/0")
    assert no_redis.returncode == 2, no_redis.stdout + no_redis.stderr
    assert no_redis.stderr.count("\n") == 1 and "cannot reach Redis" in no_redis.stderr
    assert "hunter2" not in no_redis.stdout + no_redis.stderr, "the password was printed"
    no_coord = _worker("--coordinator", "http://127.0.0.1:9", "--redis-url", redis_url)
    assert no_coord.returncode == 2, no_coord.stdout + no_coord.stderr
    assert "cannot reach the coordinator at http://127.0.0.1:9" in no_coord.stderr
    assert no_coord.stderr.count("\n") == 1
    bad = _worker("--coordinator", url, "--redis-url", redis_url, "--pool", "threads")
    assert bad.returncode == 2 and "--pool must be one of" in bad.stderr
