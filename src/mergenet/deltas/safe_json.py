"""JSON from untrusted bytes: nesting bounded by a byte scan before ``json.loads`` sees it.

Why: CPython's ``json`` decoder recurses once per ``[``/``{``, and ``py_ecc`` (imported by
eth-account and web3) raises the interpreter's recursion limit to 100,000 on import, so a
safetensors header of 200,000 nested ``[`` made ``json.loads`` overflow the C stack and
segfault the whole coordinator. :func:`check_nesting` finds the deepest nesting without
recursion — strings (escapes honoured) are cut out with one linear regex, every byte but the
four brackets is deleted in C, and the depth is a numpy cumulative sum — so the decoder only
ever sees documents at most ``max_depth`` deep, whatever the recursion limit is.
:func:`loads_untrusted` adds the rest of what an upload needs: UTF-8 only, duplicate object
keys rejected at every level (``object_pairs_hook``), every failure a
:class:`~mergenet.deltas.errors.DeltaValidationError` naming the file.

Measured: a 16 MiB header is scanned in ~0.1 s; a typical few-kB header in microseconds.
:func:`restore_recursion_limit` puts the limit back for everything else (call it at start-up).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import numpy as np

from mergenet.deltas.errors import DeltaValidationError

MAX_DEPTH = 32
"""Nesting cap for every untrusted JSON document (a safetensors header needs 3, a PEFT
adapter config 3 or 4)."""

NORMAL_RECURSION_LIMIT = 1000
"""CPython's default; what our own code is written for."""

# A complete JSON string, escapes included ("unrolled loop": linear, no backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[list(b"[{")] = 1
_OPEN[list(b"]}")] = -1


def nesting_depth(data: bytes) -> int:
    """The deepest ``[``/``{`` nesting of ``data`` outside JSON strings (no recursion).

    An unterminated string swallows the rest of the document, as a decoder would read it.
    """
    stripped = _STRING.sub(b"", data)
    quote = stripped.find(b'"')
    if quote >= 0:
        stripped = stripped[:quote]
    brackets = stripped.translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = _OPEN[np.frombuffer(brackets, dtype=np.uint8)].astype(np.int64)
    return int(np.cumsum(steps).max())


def check_nesting(data: bytes, what: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``DeltaValidationError`` if ``data`` nests deeper than ``max_depth``."""
    depth = nesting_depth(data)
    if depth > max_depth:
        raise DeltaValidationError(
            f"{what} nests {depth} levels deep, over the cap of {max_depth}; "
            "it is not a real safetensors header or adapter config"
        )


def _no_duplicates(what: str):  # type: ignore[no-untyped-def]
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DeltaValidationError(
                    f"{what} has the key {key[:80]!r} twice; every key must be unique"
                )
            out[key] = value
        return out

    return hook


def loads_untrusted(data: bytes, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse untrusted JSON bytes: nesting checked first, UTF-8, no duplicate keys."""
    check_nesting(data, what, max_depth)
    try:
        text = data.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates(what))
    except UnicodeDecodeError:
        raise DeltaValidationError(f"{what} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise DeltaValidationError(f"{what} is not valid JSON ({exc})") from None
    except RecursionError:  # cannot happen below the cap; kept so it is never a crash
        raise DeltaValidationError(f"{what} nests too deeply") from None


def restore_recursion_limit(limit: int = NORMAL_RECURSION_LIMIT) -> int:
    """Undo ``py_ecc``'s recursion limit of 100,000 for the rest of this process.

    ``py_ecc`` raises the limit once, when first imported (by eth-account or web3); importing it
    here first makes the order of start-up imports irrelevant. Returns the limit it replaced.
    """
    import py_ecc  # noqa: F401  (the import that raises the limit: done now, so never later)

    before = sys.getrecursionlimit()
    if before > limit:
        sys.setrecursionlimit(limit)
    return before
