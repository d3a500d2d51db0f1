"""Content hashes: the sha256 of a file (what a contributor signs, what the artifact store and
a worker's cache are keyed by) and the one validator for a sha256 written as hex.

Torch-free on purpose: the node, the API and a worker's fetcher hash files without a model.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from mergenet.errors import InvalidInput

_BLOCK = 1 << 20
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def sha256_hex(value: object, what: str, error: type[Exception] = InvalidInput) -> str:
    """``value`` as 64 lower-case hex digits (an optional ``0x`` and upper case are accepted).

    Raises ``error`` (``InvalidInput`` unless the caller has a more specific kind) with a
    message that names ``what`` and shows at most 80 characters of the value.
    """
    v = value.lower().removeprefix("0x") if isinstance(value, str) else ""
    if not _SHA256_HEX.fullmatch(v):
        raise error(f"{what} must be a sha256 (64 hex digits), got {str(value)[:80]!r}")
    return v


def is_sha256_hex(value: object) -> bool:
    """Whether :func:`sha256_hex` accepts ``value``."""
    try:
        sha256_hex(value, "value")
    except InvalidInput:
        return False
    return True
