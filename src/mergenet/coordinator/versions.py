"""Build an accepted recipe into the artifact store: the one step of acceptance that needs
the weights (and so torch).

Crash safety: the weights are written to a staging folder, hashed, and renamed into the store
under their hash before the caller commits the version row, so a version row always names a
complete folder; a crash in between leaves only a staging folder that the next start sweeps.
"""

from __future__ import annotations

from mergenet.coordinator.acceptance import BuiltVersion
from mergenet.coordinator.artifacts import ArtifactStore
from mergenet.merge_strategies.recipe import Recipe


class StoreVersionBuilder:
    """:class:`~mergenet.coordinator.acceptance.VersionBuilder` over an artifact store."""

    def __init__(self, store: ArtifactStore):
        self.store = store

    def __call__(self, recipe: Recipe) -> BuiltVersion:
        from mergenet.deltas.models import ModelSource
        from mergenet.merge_strategies.recipe import build_to_dir

        store = self.store
        staging = store.staging_dir()
        parent_dir = store.version_dir(recipe.parent)
        build_to_dir(recipe, parent_dir, staging, store.delta_path, check_parent=False)
        version_hash = ModelSource(staging).sha256()
        store.put_version_dir(staging, version_hash)
        return BuiltVersion(version_hash, store.relative(store.version_dir(version_hash)))
