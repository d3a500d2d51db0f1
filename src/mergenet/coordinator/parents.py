"""Deltas on older versions: what a contribution's declared parent means (issue 17, item 2).

A contributor signs ``Contribution(sha256, parent, nonce)`` where ``parent`` is the version it
fine-tuned: any version of this network, not only the current one (a contributor whose
fine-tune took a day, or who pulled before the last acceptance, would otherwise have to start
again). The coordinator

* records the declared parent as ``Contribution.parent_hash`` (what the signature binds, what
  the delta is validated against: names, shapes, dtypes, finiteness and ‖δ‖/‖θ_parent‖);
* applies δ = θ_contributor − θ_declared_parent to the CURRENT version as a task vector: the
  scoring recipe is current + 1·δ (:func:`mergenet.coordinator.proposals.scoring_recipe`), and
  merges put δ on whatever version they are built on, like every other delta. A recipe names
  its parent (the version it is built on, checked by ``merge_strategies.recipe``'s
  parent-hash check) and its deltas by content hash only, so the delta's declared parent never
  enters a recipe, a worker's fetch or the trust re-check;
* counts the temporal weight t from the declared parent's publication
  (:mod:`mergenet.rewards.temporal`), not from the version it was scored on.

Invariant: δ can be applied to the current version only if both versions hold the same tensor
names, shapes and dtypes (:func:`check_applicable`). Merges keep shapes, so in one network
every version has the base's architecture and the check never refuses an honest upload; a
store whose folders disagree (tampered, or a base swapped under a running network) answers 409
before anything is validated or written.
"""

from __future__ import annotations

from pathlib import Path

from mergenet.coordinator import models as m


def check_applicable(
    root: Path, parent: m.Version, current: m.Version | None, error: type[Exception]
) -> None:
    """Raise ``error`` (a 4xx kind) unless a delta on ``parent`` can be applied to ``current``.

    Reads the two safetensors headers once per pair (cached by folder: versions are stored
    under their hash and never change), no tensor data; nothing to check when the declared
    parent is the current version.
    """
    if current is None or current.hash == parent.hash:
        return
    from mergenet.deltas.validate import folders_mismatch

    why = folders_mismatch(str(root / parent.weights_path), str(root / current.weights_path))
    if why is not None:
        raise error(
            f"a delta on version {parent.hash[:16]}… cannot be applied to the current version "
            f"{current.hash[:16]}… ({why}); pull the current version and fine-tune it"
        )
