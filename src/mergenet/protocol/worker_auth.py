"""Signed evaluation results: how a worker proves which result it returns, for which task.

Evaluation workers are untrusted (DESIGN.md, "Who is trusted"). Each one gets a credential
from the operator: ``worker_secret(master, worker_id)``, an HMAC-SHA256 of its id under the
coordinator's master key, so the coordinator keeps one key and can still tell workers apart
(and bar one). A worker returns :func:`sign_result`'s wire form::

    {"worker": id, "outcome": <EvalOutcome JSON>, "mac": hex}

where ``mac`` is HMAC-SHA256 under the worker's secret of the canonical JSON (sorted keys,
no spaces) of ``{"key": <dispatched key>, "worker": id, "outcome": …}``. The coordinator
recomputes it with the key **it** dispatched (:meth:`Keyring.verify`), so a result cannot be
replayed onto another task, and compares with :func:`hmac.compare_digest`. Secrets are never
part of a message or a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from mergenet.errors import Unauthorized

_DERIVE = b"mergenet-worker-v1:"


def worker_secret(master: bytes, worker_id: str) -> str:
    """The credential the operator issues to ``worker_id`` (64 hex digits)."""
    return hmac.new(master, _DERIVE + worker_id.encode(), hashlib.sha256).hexdigest()


def canonical(key: str, worker_id: str, outcome: dict[str, Any]) -> bytes:
    """The bytes a result's MAC covers (allow_nan: a NaN metric is signed as it is sent)."""
    body = {"key": key, "worker": worker_id, "outcome": outcome}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _mac(secret: str, key: str, worker_id: str, outcome: dict[str, Any]) -> str:
    return hmac.new(secret.encode(), canonical(key, worker_id, outcome), hashlib.sha256).hexdigest()


def sign_result(secret: str, worker_id: str, key: str, outcome: dict[str, Any]) -> dict[str, Any]:
    """The wire form of ``outcome`` for the task dispatched under ``key`` (worker side)."""
    return {"worker": worker_id, "outcome": outcome, "mac": _mac(secret, key, worker_id, outcome)}


@dataclass(frozen=True)
class SignedResult:
    """A result whose MAC checked out: ``worker`` really sent ``outcome`` for the task."""

    worker: str
    outcome: dict[str, Any]


class Keyring:
    """The coordinator's side: checks results against the master key it issued secrets from."""

    def __init__(self, master: bytes):
        if len(master) < 16:
            raise ValueError("the worker master key must be at least 16 bytes")
        self._master = master

    def verify(self, wire: object, dispatched_key: str) -> SignedResult:
        """The checked result, or Unauthorized saying why (never echoing a secret or MAC)."""
        if not isinstance(wire, dict) or set(wire) != {"worker", "outcome", "mac"}:
            raise Unauthorized("result is not signed (expected worker, outcome, mac)")
        worker, outcome, mac = wire["worker"], wire["outcome"], wire["mac"]
        if not isinstance(worker, str) or not worker or len(worker) > 200:
            raise Unauthorized("result names no valid worker id")
        if not isinstance(outcome, dict) or not isinstance(mac, str):
            raise Unauthorized(f"result from {worker!r} is malformed")
        expected = _mac(worker_secret(self._master, worker), dispatched_key, worker, outcome)
        if not hmac.compare_digest(expected, mac):
            raise Unauthorized(f"result from {worker!r} has a bad signature")
        return SignedResult(worker, outcome)
