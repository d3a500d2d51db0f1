"""Accepting a contribution: every check before anything is written, then one commit.

Order (cheap and unauthenticated checks first, so a hostile upload costs little):
form fields → size cap (while receiving) → sha256 → EIP-712 signature over (sha256, parent,
nonce) under this coordinator's domain (chain id, distributor, network id) → parent is a known
version (any earlier one: the delta is applied to the current version as a task vector, so both
must hold the same tensors, :mod:`mergenet.coordinator.parents`) → nonce unused → not an exact
copy → pickle sniff and header-first safetensors validation against the declared parent (names,
shapes, dtypes, finite, relative-norm cap) → not a copy of other contributors' earlier deltas
(explained fraction ≥ ``copy_explained`` in task-vector space,
:mod:`mergenet.coordinator.copies`: credit stays with the earliest; the upload is sketched
outside the submission lock, inside it only the index is looked up). Only then are the
contributor, the nonce and the contribution rows written and the file moved into the
content-addressed store, in one transaction. Every rejection raises one of :data:`REJECTIONS`
(each derived from an error kind of :mod:`mergenet.errors`, which the API maps to a 4xx status)
with a message that says what to fix; the upload's temporary file is removed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from eth_utils import is_address, to_checksum_address
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import models as m
from mergenet.coordinator.artifacts import ArtifactStore
from mergenet.coordinator.copies import DEFAULT_CANDIDATES, DEFAULT_THRESHOLD, CopyIndex
from mergenet.coordinator.parents import check_applicable
from mergenet.coordinator.state import current_version
from mergenet.db import transaction
from mergenet.deltas.errors import DeltaTooLarge, DeltaValidationError
from mergenet.errors import (
    Conflict,
    InvalidInput,
    RateLimited,
    TooLarge,
    Unauthorized,
    UnsupportedMediaType,
)
from mergenet.protocol.signing import (
    SignatureError,
    SigningDomain,
    adapter_sha256,
    canonical_signature,
    verify_submission,
)

if TYPE_CHECKING:
    from mergenet.coordinator.bonds import BondKeeper
    from mergenet.deltas.sketch import DeltaSketch
    from mergenet.deltas.validate import DeltaReport

_HEX64 = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_CHUNK = 1 << 20


class InvalidUpload(InvalidInput):
    """A malformed upload or form field (the API answers 422)."""


class UnsupportedFormat(UnsupportedMediaType):
    """A pickle or zip checkpoint instead of safetensors (415, as before the error kinds)."""


class BadSignature(Unauthorized):
    """The signature does not check out over (sha256, parent, nonce) and the domain (401)."""


class UploadConflict(Conflict):
    """Unknown parent, reused nonce, exact or near copy (409)."""


class UploadTooLarge(TooLarge):
    """Over the upload cap for this parent, or an oversized adapter config (413)."""


class UploadQuota(RateLimited):
    """Too many of this address's uploads wait to be scored (429 with Retry-After)."""

    retry_after = 60
    """Seconds to wait: about one scoring on a busy world coordinator (queue.py)."""


REJECTIONS = (
    InvalidUpload,
    UnsupportedFormat,
    BadSignature,
    UploadConflict,
    UploadTooLarge,
    UploadQuota,
)
"""Every way an upload is rejected; each is one of the kinds in :mod:`mergenet.errors`."""


@dataclass(frozen=True)
class SubmissionLimits:
    max_upload_bytes: int | None = None
    """None: the parent's weights size plus 1 MiB (a delta is as big as its parent)."""
    max_relative_norm: float = 0.5
    copy_explained: float = DEFAULT_THRESHOLD
    """Refuse a delta when others' earlier deltas explain this fraction of it (copies.py)."""
    copy_candidates: int = DEFAULT_CANDIDATES
    max_pending_per_address: int = 3
    """Unscored uploads one address may have waiting; the next is refused with 429 and
    records nothing (so a flood of one key cannot fill the queue: coordinator/queue.py)."""


@dataclass(frozen=True)
class Upload:
    """The fields of ``POST /api/contributions``."""

    address: str
    parent_hash: str
    nonce: str
    signature: str


def receive(stream: BinaryIO, dst: Path, cap: int) -> tuple[str, int]:
    """Copy an upload to ``dst`` while hashing, refusing more than ``cap`` bytes."""
    h = hashlib.sha256()
    size = 0
    with dst.open("wb") as out:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > cap:
                raise UploadTooLarge(
                    f"upload is larger than the {cap}-byte cap for this parent model"
                )
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest(), size


def _sniff(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(8)
    if head[:2] == b"PK":
        raise UnsupportedFormat(
            "this is a zip archive (a torch.save / pickle checkpoint?); "
            "upload the delta as safetensors (safetensors.torch.save_file)",
        )
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        raise UnsupportedFormat(
            "this is a Python pickle; pickles are never loaded — upload safetensors"
        )


class SubmissionService:
    """Validates and records contributions (see module docstring); thread-safe."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        store: ArtifactStore,
        domain: SigningDomain,
        limits: SubmissionLimits | None = None,
    ):
        self.factory = factory
        self.store = store
        self.domain = domain
        self.limits = limits or SubmissionLimits()
        self._lock = threading.Lock()
        self.copies = CopyIndex(store, self.limits.copy_explained, self.limits.copy_candidates)
        self.bonds: BondKeeper | None = None
        """Set by the runtime when the chain asks for an upload bond (:mod:`.bonds`)."""

    def upload_cap(self, parent_hash: str | None = None) -> int:
        if self.limits.max_upload_bytes is not None:
            return self.limits.max_upload_bytes
        with self.factory() as s:
            v = s.scalar(select(m.Version).order_by(m.Version.id.desc()).limit(1))
        if v is None:
            return 1 << 20
        size = (self.store.root / v.weights_path / "model.safetensors").stat().st_size
        return size + (1 << 20)

    def _fields(self, up: Upload) -> tuple[str, str, int]:
        if not isinstance(up.address, str) or not is_address(up.address):
            raise InvalidUpload(
                f"address {up.address!r} is not an Ethereum address (0x + 40 hex digits)"
            )
        if not _HEX64.match(up.parent_hash or ""):
            raise InvalidUpload(
                "parent_hash must be the 64-hex-digit hash of the version you fine-tuned"
            )
        try:
            nonce = int(up.nonce)
        except (TypeError, ValueError):
            raise InvalidUpload(f"nonce must be a non-negative integer, got {up.nonce!r}") from None
        if not 0 <= nonce < 2**63:
            raise InvalidUpload(f"nonce must be in [0, 2**63), got {nonce}")
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]{130}", up.signature or ""):
            raise InvalidUpload("signature must be 65 bytes as hex (0x + 130 hex digits)")
        return to_checksum_address(up.address), up.parent_hash.lower().removeprefix("0x"), nonce

    def submit(
        self, up: Upload, stream: BinaryIO, adapter_config: bytes | None = None
    ) -> m.Contribution:
        """Validate and record one delta; raises one of :data:`REJECTIONS`.

        With ``adapter_config`` (the bytes of a PEFT ``adapter_config.json``) the stream is the
        adapter's ``adapter_model.safetensors`` and the signed hash is
        :func:`mergenet.protocol.signing.adapter_sha256`.
        """
        address, parent_hash, nonce = self._fields(up)
        if adapter_config is not None and len(adapter_config) > 1 << 20:
            raise UploadTooLarge("adapter_config.json is over 1 MiB")
        tmp = self.store.incoming(".lora" if adapter_config is not None else ".safetensors")
        weights = tmp / "adapter_model.safetensors" if adapter_config is not None else tmp
        if adapter_config is not None:
            tmp.mkdir()
            (tmp / "adapter_config.json").write_bytes(adapter_config)
        try:
            sha, size = receive(stream, weights, self.upload_cap(parent_hash))
            if size == 0:
                raise InvalidUpload("the uploaded file is empty")
            if adapter_config is not None:
                sha = adapter_sha256(adapter_config, sha)
            try:
                verify_submission(address, up.signature, sha, parent_hash, nonce, self.domain)
            except SignatureError as exc:
                raise BadSignature(f"bad signature: {exc}") from None
            if self.bonds is not None:  # 402 unless the signer bonded this sha256 on chain
                self.bonds.check(sha, address)
            return self._check_and_record(tmp, sha, size, address, parent_hash, nonce, up)
        finally:
            discard(tmp)

    def _check_and_record(
        self,
        tmp: Path,
        sha: str,
        size: int,
        address: str,
        parent_hash: str,
        nonce: int,
        up: Upload,
    ) -> m.Contribution:
        """Checks, validation and sketching run outside the lock (validation takes a sandboxed
        child; sketching reads the whole upload; the first upload after a start loads or builds
        the earlier deltas' sketches); the lock covers only what was recorded since that
        snapshot, the copy check against the in-memory index (a few small least-squares fits)
        and the recording transaction, so one slow upload never stalls the rest. Nonce and
        exact-copy races past the re-check are caught by the unique constraints."""
        from mergenet.deltas.sketch import sketch_delta

        parent_dir, others = self._check_records(sha, address, parent_hash, nonce)
        report = self._validate(tmp, parent_hash, parent_dir)
        sketch = sketch_delta(tmp)
        self.copies.sync(others)
        self._check_copy(sketch, address, sha)  # refuse early, without waiting for the lock
        with self._lock:
            _, now = self._check_records(sha, address, parent_hash, nonce)
            self.copies.sync(now, exclusive=False)  # normally indexed already, when recorded
            self._check_copy(sketch, address, sha)
            row = self._record(tmp, sha, size, address, parent_hash, nonce, up, report)
            self.copies.add(sha, address, sketch)
        self.copies.persist(sha, sketch)
        return row

    def _check_copy(self, sketch: DeltaSketch, address: str, sha: str = "") -> None:
        verdict = self.copies.check(sketch, address)
        if verdict.is_copy:
            if self.bonds is not None and sha:
                self.bonds.forfeit(sha, address)  # a refused copy's bond is kept
            raise UploadConflict(verdict.message())

    def _check_records(
        self, sha: str, address: str, parent_hash: str, nonce: int
    ) -> tuple[Path, list[tuple[str, str]]]:
        """Known parent, unused nonce, no exact copy; returns the parent's folder and every
        earlier (sha256, address), oldest first, for the copy index."""
        with self.factory() as s:
            parent = s.scalar(select(m.Version).where(m.Version.hash == parent_hash))
            if parent is None:
                raise UploadConflict(
                    f"parent {parent_hash[:16]}… is not a version of this network; pull the "
                    "current version (`mergenet node pull`, GET /api/versions/current), "
                    "fine-tune it and sign its hash",
                )
            check_applicable(self.store.root, parent, current_version(s), UploadConflict)
            if s.get(m.Nonce, (address, nonce)) is not None:
                raise UploadConflict(
                    f"nonce {nonce} was already used by {address}; sign with a fresh nonce"
                )
            cap = self.limits.max_pending_per_address
            if _pending(s, address) >= cap:
                raise UploadQuota(
                    f"{address} already has {cap} uploads waiting to be scored; retry after "
                    f"{UploadQuota.retry_after} s, when one of them is scored"
                )
            earlier = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == sha))
            if earlier is not None:
                raise UploadConflict(
                    f"this exact delta was already submitted by {earlier.address}; "
                    "credit stays with the earliest submission",
                )
            others = [
                (c.sha256, c.address)
                for c in s.scalars(select(m.Contribution).order_by(m.Contribution.id))
            ]
            return self.store.root / parent.weights_path, others

    def _validate(self, tmp: Path, parent_hash: str, parent_dir: Path) -> DeltaReport:
        """Not a pickle, a valid delta (or adapter) of the parent, not all zeros."""
        from mergenet.deltas.sandbox import validate_upload
        from mergenet.deltas.validate import ValidationLimits

        lora = tmp.is_dir()
        _sniff(tmp / "adapter_model.safetensors" if lora else tmp)
        limits = ValidationLimits(
            max_file_bytes=self.upload_cap(parent_hash),
            max_relative_norm=self.limits.max_relative_norm,
        )
        try:  # in a child with CPU, memory and wall-clock limits (deltas.sandbox)
            report = validate_upload(tmp, parent_dir, limits)
        except (DeltaValidationError, DeltaTooLarge) as exc:
            what = "adapter" if lora else "delta"
            msg = str(exc).replace(str(tmp.absolute()), what).replace(tmp.name, what)
            if "pass the base model" in msg:
                msg = f"{what} saves full modules (modules_to_save); train LoRA factors only"
            kind = UploadTooLarge if isinstance(exc, DeltaTooLarge) else InvalidUpload
            raise kind(f"invalid {what}: {msg}") from None
        if report.delta_norm == 0:
            raise InvalidUpload("the delta is all zeros: it changes nothing")
        return report

    def _record(
        self,
        tmp: Path,
        sha: str,
        size: int,
        address: str,
        parent_hash: str,
        nonce: int,
        up: Upload,
        report: DeltaReport,
    ) -> m.Contribution:
        """Contributor, nonce and contribution rows and the stored file, in one transaction."""
        try:
            with transaction(self.factory) as s:
                if s.get(m.Contributor, address) is None:
                    s.add(m.Contributor(address=address))
                    s.flush()
                s.add(m.Nonce(address=address, nonce=nonce))
                row = m.Contribution(
                    sha256=sha,
                    address=address,
                    parent_hash=parent_hash,
                    nonce=nonce,
                    signature=canonical_signature(up.signature),
                    kind="lora" if tmp.is_dir() else "dense",
                    size_bytes=size,
                    relative_norm=report.relative_norm,
                    status=m.RECEIVED,
                )
                s.add(row)
                s.flush()
                self.store.put_delta(tmp, sha)
        except IntegrityError:
            raise UploadConflict(
                "nonce or delta was recorded concurrently; sign with a fresh nonce"
            ) from None
        return row


def _pending(s: Session, address: str) -> int:
    return int(
        s.scalar(
            select(func.count())
            .select_from(m.Contribution)
            .where(m.Contribution.address == address, m.Contribution.status == m.RECEIVED)
        )
        or 0
    )


def discard(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
