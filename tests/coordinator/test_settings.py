"""One source for the loop's settings: ``CoordinatorSettings.loop`` (nested, pydantic)."""

from __future__ import annotations

import pytest

from mergenet.coordinator.settings import CoordinatorSettings, LoopSettings


def test_nested_env_names_set_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERGENET_COORDINATOR_LOOP__MARGIN", "0.02")
    monkeypatch.setenv("MERGENET_COORDINATOR_LOOP__MAX_EVALUATIONS", "7")
    loop = CoordinatorSettings().loop
    assert (loop.margin, loop.max_evaluations) == (0.02, 7)
    assert loop.beta == LoopSettings().beta  # the rest keep their one default


def test_flat_names_are_still_read_below_the_nested_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERGENET_COORDINATOR_SAMPLE_N", "8")
    monkeypatch.setenv("MERGENET_COORDINATOR_SEED", "3")
    monkeypatch.setenv("MERGENET_COORDINATOR_LOOP__SEED", "5")
    cs = CoordinatorSettings(max_evaluations=40, workers=0)
    assert (cs.loop.sample_n, cs.loop.seed, cs.loop.max_evaluations) == (8, 5, 40)
    assert cs.workers == 0


def test_unknown_loop_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="not_a_knob"):
        CoordinatorSettings(loop={"not_a_knob": 1})
