"""The loop's vocabulary: contribution and candidate statuses, candidate kinds, evaluation
purposes.

``StrEnum`` members *are* their strings, so the database columns, the API's JSON and the event
stream carry the same plain values they always did; comparing a loaded row's ``status`` (a plain
``str``) with a member works both ways. This module imports nothing of the project, so the
table models, the loop and the read side can all use it.
"""

from __future__ import annotations

from enum import StrEnum


class ContributionStatus(StrEnum):
    """``contributions.status``."""

    RECEIVED = "received"
    """Stored and validated; waiting for its scoring evaluation."""
    SCORED = "scored"
    """Scored on the version in ``scored_on``; ``in_pool`` says whether merges may use it."""
    FAILED = "failed"
    """Its scoring evaluation failed (the error is on its scoring candidate)."""


class CandidateStatus(StrEnum):
    """``candidates.status``: queued → done | confirming → accepted | rejected; or failed."""

    QUEUED = "queued"
    """Waiting for (or in) its selection or contribution evaluation."""
    DONE = "done"
    """Scored; not (or not yet) the best on its version."""
    FAILED = "failed"
    """Its evaluation or the recording of it failed; never dispatched again."""
    CONFIRMING = "confirming"
    """Passed selection; waiting for (or in) its confirmation on a fresh sample."""
    ACCEPTED = "accepted"
    """Became a version."""
    REJECTED = "rejected"
    """Failed confirmation, or its parent was replaced first, or it rebuilt an existing
    version."""


class Kind(StrEnum):
    """How a candidate was made (``candidates.kind``)."""

    CONTRIBUTION = "contribution"
    """current + δ at weight 1: a contribution's scoring, never a version."""
    SINGLE = "single"
    MULTI = "multi"
    CROSSOVER = "crossover"
    MUTATION = "mutation"
    FEED = "feed"
    """The current core measured on fresh rows for the live feed (a weight-0 recipe on the
    version, :mod:`mergenet.coordinator.feed`); never a version, never ranked."""
    ATTRIBUTION = "attribution"
    """An accepted version's recipe, or that recipe less one credited contribution, on the
    version's parent: the paired evaluations that price each contribution's marginal
    improvement (:mod:`mergenet.coordinator.attribution`); never a version, never ranked."""


EVOLUTION_KINDS = (Kind.SINGLE, Kind.MULTI, Kind.CROSSOVER, Kind.MUTATION)
"""The kinds the loop proposes; only these can become versions."""


class Purpose(StrEnum):
    """Why an evaluation ran (``evaluations.purpose``)."""

    SELECTION = "selection"
    """On the version's shared selection sample: ranks candidates built on that version."""
    CONFIRMATION = "confirmation"
    """On a fresh sample, for a candidate that passed selection."""
    CONTRIBUTION = "contribution"
    """Scores a new contribution (current + δ) against the current version."""
    ATTRIBUTION = "attribution"
    """Leave-one-out after an acceptance: V and each V∖c against V's parent P, all on one
    fresh sample (paired rows); not counted against ``max_evaluations``."""
    FEED = "feed"
    """Measures the current core (or the base) on fresh rows for the live feed; S and H(s)
    never see it."""
