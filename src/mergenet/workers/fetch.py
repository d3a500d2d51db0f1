"""A worker's local cache of coordinator artifacts, fetched over HTTP by content hash.

A Celery task carries a recipe and a sample spec, never weights. The recipe names its parent
version by state-dict hash and its contributions by sha256; this module turns those hashes
into local paths. Rows are not fetched: a task carries its own (decision rows are private,
drawn per evaluation, and no route serves them; see :mod:`mergenet.protocol.evaluation`).

The folder layout is :mod:`mergenet.protocol.artifacts` (the same as the coordinator's store):

* ``versions/<hash>/`` ← ``GET /api/versions/<hash>/weights`` (tar.gz of the HF folder);
  checked by the state-dict hash of its safetensors (:class:`ModelSource`), so the hash
  that names a version is the hash of what was received;
* ``deltas/ab/<sha>.safetensors`` ← ``GET /api/deltas/<sha>``, checked by the file's sha256;
  a LoRA adapter arrives as a tar.gz and becomes ``deltas/ab/<sha>.lora/``, checked by
  :func:`~mergenet.protocol.signing.adapter_sha256`.

Why this is safe to share: every download goes to a private temporary name under the cache,
is checked, and only then renamed into place, so a path that exists is complete and verified
(another worker process on the same cache either wins the rename or finds the artifact
there). A mismatch deletes the download and raises :class:`IntegrityError`, which names the
URL and both hashes. Only safetensors and JSON are accepted inside archives, never pickle.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import time
import uuid
from pathlib import Path

import httpx

from mergenet.config import Settings
from mergenet.deltas.models import ModelSource
from mergenet.protocol.artifacts import ArtifactLayout
from mergenet.protocol.evaluation import WorkerEnv
from mergenet.protocol.hashes import sha256_file, sha256_hex
from mergenet.protocol.signing import adapter_folder_sha256

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
_BLOCK = 1 << 20


class FetchError(RuntimeError):
    """An artifact could not be fetched (coordinator unreachable, 404, bad archive)."""


class IntegrityError(FetchError):
    """What arrived does not hash to what was asked for; nothing of it was kept."""


def _hex64(value: str, what: str) -> str:
    return sha256_hex(value, what, FetchError)


class _Transient(FetchError):
    """A failure a retry may cure: the coordinator unreachable for a moment, or 502/503/504."""


class ArtifactCache(ArtifactLayout):
    """Content-addressed local copies of a coordinator's artifacts (see module docstring)."""

    def __init__(
        self,
        coordinator_url: str,
        cache_dir: str | Path,
        *,
        timeout: float = 120.0,
        max_bytes: int = 16 << 30,
        retry_seconds: float = 60.0,
    ):
        if not coordinator_url.startswith(("http://", "https://")):
            raise FetchError(
                f"the coordinator URL must start with http:// or https://, got {coordinator_url!r}"
            )
        super().__init__(cache_dir)
        self.url = coordinator_url.rstrip("/")
        self.max_bytes = max_bytes
        self.retry_seconds = retry_seconds
        """How long a download keeps retrying while the coordinator is unreachable or answers
        502/503/504 (a restart took 6-21 s in the chaos runs); other failures are not retried."""
        for sub in ("versions", "deltas", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)
        self.downloads = 0
        """Artifacts this instance fetched (cache hits do not count): tests and logs read it."""

    def close(self) -> None:
        self._http.close()

    # -- the two kinds --------------------------------------------------------------------
    def version_dir(self, version_hash: str) -> Path:
        """The HF folder of a version, fetched once and checked by its state-dict hash."""
        h = _hex64(version_hash, "version hash")
        dst = super().version_dir(h)
        if dst.is_dir():
            return dst
        tmp = self._tmp()
        try:
            archive = tmp / "weights.tar.gz"
            self._download(f"/api/versions/{h}/weights", archive)
            folder = _extract_flat(archive, tmp / "x", f"version {h[:16]}…")
            if (
                not (folder / "model.safetensors").exists()
                and not (folder / "model.safetensors.index.json").exists()
            ):
                raise FetchError(f"version {h[:16]}… arrived without model.safetensors")
            got = ModelSource(folder).sha256()
            self._check(got, h, f"/api/versions/{h}/weights")
            self._place(folder, dst)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dst

    def delta_path(self, sha256: str) -> Path:
        """A dense delta's safetensors file, or a LoRA adapter's folder."""
        sha = _hex64(sha256, "delta sha256")
        for p in (self.delta_file(sha, lora=False), self.delta_file(sha, lora=True)):
            if p.exists():
                return p
        self.delta_folder(sha).mkdir(parents=True, exist_ok=True)
        tmp = self._tmp()
        try:
            body = tmp / "delta"
            kind = self._download(f"/api/deltas/{sha}", body).get("x-mergenet-delta-kind")
            if kind == "lora":
                adapter = _extract_flat(body, tmp / "x", f"adapter {sha[:16]}…")
                if (
                    not (adapter / "adapter_model.safetensors").exists()
                    or not (adapter / "adapter_config.json").exists()
                ):
                    raise FetchError(
                        f"adapter {sha[:16]}… arrived without adapter_model.safetensors "
                        "and adapter_config.json"
                    )
                self._check(adapter_folder_sha256(adapter), sha, f"/api/deltas/{sha}")
                dst = self.delta_file(sha, lora=True)
                self._place(adapter, dst)
            elif kind == "dense":
                self._check(sha256_file(body), sha, f"/api/deltas/{sha}")
                dst = self.delta_file(sha, lora=False)
                self._place(body, dst)
            else:
                raise FetchError(
                    f"/api/deltas/{sha} answered without a known X-Mergenet-Delta-Kind "
                    f"(got {kind!r}); is {self.url} a mergenet coordinator?"
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dst

    # -- plumbing -------------------------------------------------------------------------
    def _tmp(self) -> Path:
        path = self.root / "tmp" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path

    def _download(self, route: str, dst: Path) -> httpx.Headers:
        """Stream ``route`` into ``dst`` (size-capped), retrying a coordinator that is down for
        a moment (connection refused or reset, 502/503/504) with backoff for up to
        ``retry_seconds``; the response headers. Anything else fails at once."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.5
        while True:
            try:
                return self._download_once(route, dst)
            except _Transient as exc:
                if time.monotonic() + delay > deadline:
                    msg = f"{exc} (still failing after {self.retry_seconds:.0f} s)"
                    raise FetchError(msg) from None
                time.sleep(delay)
                delay = min(delay * 2, 8.0)

    def _download_once(self, route: str, dst: Path) -> httpx.Headers:
        try:
            with self._http.stream("GET", route) as r:
                if r.status_code != 200:
                    r.read()
                    detail = _detail(r)
                    error = _Transient if r.status_code in (502, 503, 504) else FetchError
                    raise error(f"GET {self.url}{route} → {r.status_code}: {detail}")
                n = 0
                with dst.open("wb") as fh:
                    for block in r.iter_bytes(_BLOCK):
                        n += len(block)
                        if n > self.max_bytes:
                            raise FetchError(
                                f"GET {self.url}{route} is over the {self.max_bytes} byte cap"
                            )
                        fh.write(block)
                    fh.flush()
                    os.fsync(fh.fileno())
                self.downloads += 1
                return r.headers
        except httpx.TransportError as exc:
            raise _Transient(f"GET {self.url}{route} failed: {exc}") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"GET {self.url}{route} failed: {exc}") from None

    def _check(self, got: str, want: str, route: str) -> None:
        if got != want:
            raise IntegrityError(
                f"{self.url}{route} sent content hashing to {got}, not the requested {want}; "
                "the download was discarded (a corrupted transfer, or a coordinator serving "
                "the wrong artifact)"
            )

    @staticmethod
    def _place(src: Path, dst: Path) -> None:
        """Rename a checked artifact into place; if another process won, keep theirs."""
        try:
            os.replace(src, dst) if src.is_file() else os.rename(src, dst)
        except OSError:
            if not dst.exists():
                raise


def _detail(r: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        body = r.json()
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])[:500]
    return r.text[:200]


def _extract_flat(archive: Path, out: Path, what: str) -> Path:
    """Extract a tar.gz of one folder of plain files (``name/file``); its folder.

    Anything else — nested paths, links, devices, pickle checkpoints — is refused, so an
    archive can only ever yield safetensors/JSON/tokenizer files in one new folder.
    """
    out.mkdir(parents=True)
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            if not members:
                raise FetchError(f"{what}: the archive is empty")
            tops = set()
            for mem in members:
                parts = Path(mem.name).parts
                if not mem.isfile() or len(parts) != 2 or ".." in parts:
                    raise FetchError(f"{what}: unexpected archive member {mem.name!r}")
                if parts[1].lower().endswith(_PICKLE_SUFFIXES):
                    raise FetchError(f"{what}: refusing pickle file {parts[1]!r}")
                tops.add(parts[0])
            if len(tops) != 1:
                raise FetchError(f"{what}: the archive holds {len(tops)} folders, not one")
            tar.extractall(out, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FetchError(f"{what}: not a readable tar.gz ({exc})") from None
    return out / tops.pop()


# --------------------------------------------------------------------------- worker wiring

_configured: dict[str, str] = {}


def configure_worker(coordinator_url: str | None, cache_dir: str | Path | None) -> None:
    """Set this worker process's coordinator URL and cache folder (``run_worker`` does, before
    Celery forks its pool, so every child inherits them)."""
    _configured.clear()
    if coordinator_url:
        _configured["url"] = coordinator_url.rstrip("/")
    if cache_dir:
        _configured["cache_dir"] = str(cache_dir)


def default_cache_dir() -> Path:
    """``<MERGENET_CACHE_DIR>/worker``: rebuildable, so under the cache, not the data dir."""
    return Settings().cache_dir / "worker"


def cache_for(env: WorkerEnv) -> ArtifactCache:
    """The cache a worker uses for ``env``: its own coordinator URL (if it was given one)
    before the URL the coordinator advertised, and its configured cache folder."""
    url = _configured.get("url") or env.coordinator_url
    if not url:
        raise FetchError("no coordinator URL: start the worker with --coordinator URL")
    return ArtifactCache(url, _configured.get("cache_dir") or default_cache_dir())
