"""Version weights archives are built once per version and served from the cache after."""

from __future__ import annotations

import io
import tarfile
from typing import Any


def test_weights_archive_is_built_once_and_shared_by_hash_and_current(
    coordinator: Any, client: Any
) -> None:
    archives = client.app.state.archives
    current = client.get("/api/versions/current").json()["hash"]
    first = client.get("/api/versions/current/weights")
    assert first.status_code == 200, first.text
    assert first.headers["x-mergenet-version"] == current
    assert first.headers["content-type"] == "application/gzip"
    assert f'filename="mergenet-{current[:16]}.tar.gz"' in first.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(first.content), mode="r:gz") as tar:
        names = sorted(tar.getnames())
        model = tar.extractfile(f"{current[:16]}/model.safetensors")
        assert model is not None
        stored = coordinator.store.version_dir(current) / "model.safetensors"
        assert model.read() == stored.read_bytes()
    assert names == [f"{current[:16]}/config.json", f"{current[:16]}/model.safetensors"]
    assert archives.builds == 1

    by_hash = client.get(f"/api/versions/{current}/weights")
    again = client.get("/api/versions/0x" + current.upper() + "/weights")
    assert by_hash.content == again.content == first.content
    assert archives.builds == 1  # three requests, one build
    assert [p.name for p in archives.folder.iterdir()] == [f"{current}.tar.gz"]

    assert client.get("/api/versions/" + "ab" * 32 + "/weights").status_code == 404
    assert archives.builds == 1


def test_concurrent_first_requests_build_once(coordinator: Any, tmp_path: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mergenet.coordinator.serving import VersionArchives

    archives = VersionArchives(coordinator.store, tmp_path / "cache")
    with coordinator.factory() as s:
        from mergenet.coordinator import queries

        v = queries.version(s, "current")
    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: archives.path(v.hash, v.weights_path), range(8)))
    assert len(set(paths)) == 1 and paths[0].is_file()
    assert archives.builds == 1
    assert sorted(p.name for p in archives.folder.iterdir()) == [f"{v.hash}.tar.gz"]
