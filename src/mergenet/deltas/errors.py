"""The errors of bad deltas, as kinds of :mod:`mergenet.errors` (the API maps kinds to 4xx).

``DeltaValidationError`` is an ``InvalidInput`` (422): the message says what to fix.
``DeltaTooLarge`` is a ``TooLarge`` (413): a file, header or validation run over a size or
memory cap. Neither message ever holds more than a short excerpt of the untrusted input.
"""

from __future__ import annotations

from mergenet.errors import InvalidInput, TooLarge


class DeltaValidationError(InvalidInput):
    """A delta (or adapter) that cannot be accepted; the message says what to fix."""


class DeltaTooLarge(TooLarge):
    """A delta, header or adapter config over a size cap, or too big to validate in memory."""
