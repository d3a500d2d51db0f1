"""Row epochs: the secret every scoring decision's rows are drawn from, rotated and revealed.

One epoch is open at a time. Its 32-byte secret (``secrets.token_bytes``) keys
:func:`mergenet.ecosystem.fresh_rows.fresh_rows`, so while it is open nobody outside the
coordinator can know the rows a contribution or candidate is scored on; its commitment
(sha256 of the secret) may be published (the chain engineer commits it on chain). When the
epoch closes (:func:`rotate`) the secret counts as revealed and the next epoch opens with a
fresh one; every evaluation of the closed epoch can then be re-run by anyone from its
recipe, ``sample_seed``, ``row_epoch`` and ``rows_label``.

Who rotates: with a chain, :mod:`mergenet.coordinator.epochs` after a reward epoch is
published (and commits/reveals on chain); without one, a timer in the coordinator runtime
every ``row_epoch_seconds`` (default 3600).

Invariants: at most one epoch is unrevealed and it has the highest number; numbers start at
1 and increase by one; a secret is never logged, and no route returns it before
``revealed_at`` is set (only :func:`revealed` hands out revealed epochs).
"""

from __future__ import annotations

import hashlib
import logging
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mergenet.coordinator import models as m
from mergenet.db import utcnow

log = logging.getLogger("mergenet.coordinator.row_epochs")

SECRET_BYTES = 32


def commitment_of(secret: bytes) -> str:
    """The public commitment to a secret: sha256 hex (what the chain contract checks)."""
    return hashlib.sha256(secret).hexdigest()


def secret_of(epoch: m.RowEpoch) -> bytes:
    """The epoch's secret as bytes (callers keep it private while the epoch is open)."""
    return bytes.fromhex(epoch.secret)


def _open(session: Session, number: int) -> m.RowEpoch:
    secret = secrets.token_bytes(SECRET_BYTES)
    epoch = m.RowEpoch(
        number=number,
        commitment=commitment_of(secret),
        secret=secret.hex(),
        opened_at=utcnow(),
    )
    session.add(epoch)
    session.flush()
    log.info("row epoch %d opened (commitment %s)", number, epoch.commitment)
    return epoch


def current_row_epoch(session: Session) -> m.RowEpoch:
    """The open epoch; opens epoch 1 (or the next after the last revealed one) if none is."""
    epoch = session.scalar(
        select(m.RowEpoch)
        .where(m.RowEpoch.revealed_at.is_(None))
        .order_by(m.RowEpoch.number.desc())
        .limit(1)
    )
    if epoch is not None:
        return epoch
    last = session.scalar(select(func.max(m.RowEpoch.number)))
    return _open(session, (last or 0) + 1)


def rotate(session: Session) -> tuple[m.RowEpoch, m.RowEpoch]:
    """Reveal the open epoch and open the next one: ``(revealed, opened)``.

    Runs in the caller's transaction, so the reveal and the new epoch commit together (a
    crash leaves either both or neither). Evaluations dispatched under the old epoch and
    finishing later still record its number: their rows were fixed at dispatch.
    """
    closed = current_row_epoch(session)
    closed.revealed_at = utcnow()
    session.flush()
    opened = _open(session, closed.number + 1)
    _reseed_selection(session)
    log.info("row epoch %d revealed, %d opened", closed.number, opened.number)
    return closed, opened


def _reseed_selection(session: Session) -> None:
    """Give the current version a new selection seed, so its later candidates are selected
    on rows of the newly opened epoch: the rows pinned to the old seed were drawn from the
    epoch just revealed, and are public from now on. Selection compares a candidate only
    with rivals of the same seed (:mod:`mergenet.coordinator.acceptance`), so comparisons
    stay paired."""
    version = session.scalars(select(m.Version).order_by(m.Version.id.desc()).limit(1)).first()
    if version is not None:
        version.selection_seed = secrets.randbits(62)


def revealed(session: Session, number: int) -> m.RowEpoch | None:
    """Epoch ``number`` if its secret is revealed, else None (also for an open epoch)."""
    epoch = session.get(m.RowEpoch, number)
    if epoch is None or epoch.revealed_at is None:
        return None
    return epoch


def epoch_secret(session: Session, number: int) -> bytes:
    """The secret of epoch ``number``, open or not (the coordinator's own use only)."""
    epoch = session.get(m.RowEpoch, number)
    if epoch is None:
        raise KeyError(f"no row epoch {number}")
    return secret_of(epoch)
