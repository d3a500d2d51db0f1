"""The live page in a real browser: Debian's chromium driven by Playwright, against a real
coordinator (uvicorn on a loopback port) with recorded history; a version accepted while the
page is open must appear without a reload (server-sent events).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from .history import STRATEGIES, TASKS, Recorder, reward_units

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADDRESSES = [
    "0x1111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222",
    "0x3333333333333333333333333333333333333333",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)"
)


def _record_history(rec: Recorder) -> dict[str, Any]:
    shas = rec.contributions(ADDRESSES)
    for h in shas[:2]:
        rec.contribution_score(h)  # not merges: must not be drawn on the score line
    gains = [-0.01, 0.004, -0.003, 0.012, 0.002, -0.006, 0.015, 0.001, -0.002, 0.009]
    accepted = []
    for i, g in enumerate(gains):
        rec.selection(STRATEGIES[i % len(STRATEGIES)], shas[i % 3 : i % 3 + 2], g)
        if i in (3, 7):
            accepted.append(
                rec.accept(STRATEGIES[(i + 1) % len(STRATEGIES)], shas[:3], 0.02 + 0.01 * i / 7)
            )
    # 10 selections + 2 accepted (selection + confirmation each) = 14 merge evaluations
    return {"points": len(gains) + 2 * len(accepted), "marks": len(accepted), "shas": shas}


def _chart(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
          const d = document.getElementById('score-chart').data;
          return {points: d[0].x.length, dharma: d[1].y.length, marks: d[2].x.length,
                  markText: d[2].text,
                  strategies: document.getElementById('strategy-chart').data.length,
                  taskBars: document.getElementById('task-chart').data.map(t => t.x.length),
                  rows: document.querySelectorAll('#leaderboard tbody tr').length,
                  marker: window.__noReload === true};
        }"""
    )


def test_live_page_draws_history_and_follows_new_versions(coordinator: Any, server: str) -> None:
    from playwright.sync_api import sync_playwright

    from mergenet.rewards.units import format_tokens

    rec = Recorder(coordinator.factory)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # a fresh coordinator (only the base version): the page opens cleanly, empty
            page.goto(server + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            assert _chart(page)["points"] == 0
            assert page.inner_text("#leaderboard tbody") == "no contributions yet"

            expected = _record_history(rec)
            page.reload()
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            page.wait_for_selector("#status.live", timeout=10_000)

            chart = _chart(page)
            assert chart["points"] == expected["points"] == 14
            assert chart["dharma"] == expected["points"]
            assert chart["marks"] == expected["marks"] == 2
            assert "contributions (3)" in chart["markText"][0]
            assert expected["shas"][0][:10] in chart["markText"][0]
            assert chart["strategies"] == len(STRATEGIES)
            assert chart["taskBars"] == [len(TASKS), len(TASKS)]
            assert chart["rows"] == len(ADDRESSES)
            assert page.inner_text("#stat-versions") == "2"
            top = page.inner_text("#leaderboard tbody tr:first-child")
            assert ADDRESSES[0] in top
            assert format_tokens(reward_units(0.006) + reward_units(0.007)) in top

            # a version accepted while the page is open arrives over SSE, without a reload
            page.evaluate("() => { window.__noReload = true; }")
            new_hash = rec.accept(STRATEGIES[-1], expected["shas"][1:4], 0.03)
            page.wait_for_function(
                "() => document.getElementById('score-chart').data[2].x.length === 3",
                timeout=15_000,
            )
            chart = _chart(page)
            assert chart["marker"], "the page was reloaded"
            assert chart["points"] == expected["points"] + 2
            assert STRATEGIES[-1] in chart["markText"][2]
            page.wait_for_function(
                "h => document.getElementById('stat-version').textContent === h",
                arg=new_hash[:10],
                timeout=10_000,
            )
            assert page.inner_text("#stat-versions") == "3"

            # hover the new mark: the recipe, strategy and contributions are shown
            page.evaluate(
                "() => Plotly.Fx.hover('score-chart', [{curveNumber: 2, pointNumber: 2}])"
            )
            hover = page.evaluate(
                "() => document.querySelector('#score-chart .hoverlayer').textContent"
            )
            assert STRATEGIES[-1] in hover and "contributions (3)" in hover
            assert not errors, errors
            page.wait_for_timeout(600)  # let the hover label finish fading in

            out = ROOT / "test-artifacts" / "live-page.png"
            out.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            assert out.stat().st_size > 10_000
            shutil.copy(out, ROOT / "docs" / "live-page.png")
        finally:
            browser.close()
