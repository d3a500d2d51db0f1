"""The submission lock covers only the recording transaction: one upload whose validation is
slow (a large or hostile file in the sandbox) does not stall another contributor's upload, and
two near-copies racing each other still cannot both be recorded."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import account, signed_form

pytestmark = pytest.mark.world


def _submit(coord: Any, world: Any, who: int, name: str, parent: str) -> Any:
    from mergenet.coordinator.submissions import Upload

    path = world.delta_path(name)
    form = signed_form(account(who), path, parent, 1)
    with Path(path).open("rb") as fh:
        return coord.submissions.submit(Upload(**form), fh)


def test_a_slow_validation_does_not_block_other_uploads(
    cworld: Any, make_coordinator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mergenet.coordinator.submissions import SubmissionService

    coord = make_coordinator()
    with coord.factory() as s:
        from mergenet.coordinator.state import current_version

        parent = current_version(s).hash
    slow_started = threading.Event()
    real = SubmissionService._validate

    def validate(self: Any, tmp: Path, parent_hash: str, parent_dir: Path) -> Any:
        if threading.current_thread().name == "slow":
            slow_started.set()
            time.sleep(4)
        return real(self, tmp, parent_hash, parent_dir)

    monkeypatch.setattr(SubmissionService, "_validate", validate)
    names = cworld.contributor_names
    slow = threading.Thread(target=_submit, args=(coord, cworld, 1, names[0], parent), name="slow")
    slow.start()
    assert slow_started.wait(60)
    t0 = time.monotonic()
    fast = _submit(coord, cworld, 2, names[1], parent)
    fast_seconds = time.monotonic() - t0
    slow.join(60)
    assert fast.sha256 and fast_seconds < 3.5, f"the fast upload waited {fast_seconds:.1f} s"


def test_racing_copies_are_caught_inside_the_lock(cworld: Any, make_coordinator: Any) -> None:
    from mergenet.coordinator.state import current_version
    from mergenet.coordinator.submissions import UploadConflict

    coord = make_coordinator()
    with coord.factory() as s:
        parent = current_version(s).hash
    name = cworld.contributor_names[2]
    results: list[Any] = []

    def go(who: int) -> None:
        try:
            results.append(_submit(coord, cworld, who, name, parent))
        except UploadConflict as exc:
            results.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(isinstance(r, UploadConflict) for r in results) == 1, results
