"""One exception base for the whole project, and the kinds of failure a caller can act on.

Domain code raises these and never an HTTP status: the coordinator's API maps each *kind* to a
status code in one place (``coordinator/api/errors.py``), and the CLI prints any
``MergenetError`` as one ``error:`` line with exit status 2. A package keeps its own subclasses
(``DeltaValidationError``, ``LedgerError``, …) but derives them from one of the kinds below, so
a new error needs no new handler.

Invariant: ``str(error)`` is a message for the person who caused it, saying what to fix; it
never contains a secret (keys, passwords, signatures are never formatted into it).
"""

from __future__ import annotations


class MergenetError(Exception):
    """Base of every error mergenet raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(MergenetError, ValueError):
    """The caller sent something malformed or unacceptable (HTTP 422)."""


class UnsupportedMediaType(InvalidInput):
    """The input is in a format this does not take at all, e.g. a pickle checkpoint (HTTP 415)."""


class Unauthorized(MergenetError, ValueError):
    """A signature, credential or nonce does not check out (HTTP 401)."""


class NotFound(MergenetError, LookupError):
    """The named thing does not exist here (HTTP 404)."""


class Conflict(MergenetError):
    """The request is well formed but clashes with recorded state, e.g. a duplicate (HTTP 409)."""


class TooLarge(MergenetError, ValueError):
    """A body or file exceeds a size cap (HTTP 413)."""


class PaymentRequired(MergenetError):
    """A deposit is required first, e.g. the per-upload bond on chain (HTTP 402)."""


class RateLimited(MergenetError):
    """The caller has used up a quota (HTTP 429)."""


class Unavailable(MergenetError, RuntimeError):
    """A service this depends on is down or not configured (HTTP 503)."""
