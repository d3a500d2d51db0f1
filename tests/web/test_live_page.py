"""The live page and the contributor page in a real browser: Debian's chromium driven by
Playwright, against a real coordinator (uvicorn on a loopback port) with recorded history. A
version accepted while the live page is open must appear, and the core's line rise, without a
reload (server-sent events); the contributor page shows lineage and the reason line.
"""

from __future__ import annotations

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
        rec.contribution_score(h)  # not merges: must not be drawn as candidates
    rec.feed(3)  # the base, measured before anything was merged
    gains = [-0.01, 0.004, -0.003, 0.012, 0.002, -0.006, 0.015, 0.001, -0.002, 0.009]
    accepted = []
    for i, g in enumerate(gains):
        rec.selection(STRATEGIES[i % len(STRATEGIES)], shas[i % 3 : i % 3 + 2], g)
        if i in (3, 7):
            accepted.append(
                rec.accept(STRATEGIES[(i + 1) % len(STRATEGIES)], shas[:3], 0.02 + 0.01 * i / 7)
            )
            rec.feed(3)
    # 10 selections + 2 accepted (selection + confirmation each) = 14 candidate evaluations
    return {"candidates": len(gains) + 2 * len(accepted), "marks": len(accepted), "shas": shas}


def _chart(page: Any) -> dict[str, Any]:
    return page.evaluate(
        """() => {
          const d = document.getElementById('score-chart').data;
          const levels = d[1].y.filter(y => y !== null);
          return {feed: d[2].x.length, bands: d[2].error_y.array.length,
                  marks: d[3].x.length, markText: d[3].text, markY: d[3].y,
                  levels, candidates: document.getElementById('candidate-chart').data[0].x.length,
                  strategies: document.getElementById('strategy-chart').data.length,
                  taskBars: document.getElementById('task-chart').data.map(t => t.x.length),
                  taskErrors: document.getElementById('task-chart').data.map(
                      t => t.error_y.array.length),
                  rows: document.querySelectorAll('#leaderboard tbody tr').length,
                  marker: window.__noReload === true};
        }"""
    )


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)


def test_live_page_draws_the_core_and_follows_new_versions(coordinator: Any, server: str) -> None:
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
            _open(page, server + "/")
            assert _chart(page)["feed"] == 0 and _chart(page)["candidates"] == 0
            assert page.inner_text("#leaderboard tbody") == "no contributions yet"

            expected = _record_history(rec)
            page.reload()
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            page.wait_for_selector("#status.live", timeout=10_000)

            chart = _chart(page)
            assert chart["feed"] == chart["bands"] == 9  # 3 base + 3 per version
            assert chart["candidates"] == expected["candidates"] == 14
            assert chart["marks"] == expected["marks"] == 2
            assert "merged 3 contributions" in chart["markText"][0]
            assert expected["shas"][0][:10] in chart["markText"][0]
            # one step per version (2 points each), and the core rises version by version
            levels = chart["levels"][::2]
            assert len(levels) == 3 and levels[0] < levels[1] < levels[2]
            assert chart["markY"] == levels[1:]
            assert chart["strategies"] == len(STRATEGIES)
            assert chart["taskBars"] == chart["taskErrors"] == [len(TASKS), len(TASKS)]
            assert chart["rows"] == len(ADDRESSES)
            assert page.inner_text("#stat-versions") == "2"
            assert page.inner_text("#stat-gain").startswith("+")
            top = page.locator("#leaderboard tbody tr").first
            assert ADDRESSES[0] in top.inner_text()
            units = reward_units(0.006) + reward_units(0.007)
            assert top.locator("td").nth(6).inner_text() != "–"  # best impact
            accrued = top.locator("td").nth(7)
            assert accrued.inner_text() == "3.25e+4" or accrued.inner_text() == "32,500"
            assert format_tokens(units) in accrued.get_attribute("title")
            assert str(units) in accrued.get_attribute("title")

            # a version accepted while the page is open: its mark appears without a reload,
            # and the core line rises once the feed measures it
            page.evaluate("() => { window.__noReload = true; }")
            new_hash = rec.accept(STRATEGIES[-1], expected["shas"][1:4], 0.03)
            page.wait_for_function(
                "() => document.getElementById('score-chart').data[3].x.length === 3",
                timeout=15_000,
            )
            rec.feed(3)
            page.wait_for_function(
                "() => document.getElementById('score-chart').data[2].x.length === 12",
                timeout=15_000,
            )
            chart = _chart(page)
            assert chart["marker"], "the page was reloaded"
            assert chart["candidates"] == expected["candidates"] + 2
            rising = chart["levels"][::2]
            assert len(rising) == 4 and rising[3] > rising[2]
            assert STRATEGIES[-1] in chart["markText"][2]
            page.wait_for_function(
                "h => document.getElementById('stat-version').textContent === h",
                arg=new_hash[:10],
                timeout=10_000,
            )
            assert page.inner_text("#stat-versions") == "3"

            # hover the new mark: the recipe, strategy and what it merged are shown
            page.evaluate(
                "() => Plotly.Fx.hover('score-chart', [{curveNumber: 3, pointNumber: 2}])"
            )
            hover = page.evaluate(
                "() => document.querySelector('#score-chart .hoverlayer').textContent"
            )
            assert STRATEGIES[-1] in hover and "merged 3 contributions" in hover
            assert "vs parent version" in hover
            assert not errors, errors
            page.wait_for_timeout(600)  # let the hover label finish fading in

            out = ROOT / "test-artifacts" / "live-page.png"
            out.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            assert out.stat().st_size > 10_000  # the README's picture is a demo run's
        finally:
            browser.close()


def test_contributor_page_shows_lineage_and_reasons(coordinator: Any, server: str) -> None:
    from playwright.sync_api import sync_playwright
    from sqlalchemy import delete, select

    from mergenet.coordinator import models as m
    from mergenet.db import transaction
    from mergenet.rewards.models import RewardAccrual

    rec = Recorder(coordinator.factory)
    shas = rec.contributions(ADDRESSES[:1], per_address=3)
    for h in shas:
        rec.contribution_score(h)
    version = rec.accept(STRATEGIES[0], shas[:1], 0.02)
    with transaction(coordinator.factory) as s:
        late = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == shas[2]))
        late.in_pool = False
        s.execute(delete(RewardAccrual).where(RewardAccrual.contribution_id.in_(shas[1:])))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # from the live page's leaderboard, by the address link
            _open(page, server + "/")
            page.click(f"#leaderboard a[href='/contributors/{ADDRESSES[0]}']")
            page.wait_for_selector("body[data-ready='1']", timeout=20_000)
            assert page.inner_text("#address") == ADDRESSES[0]
            rows = page.locator("#contributions tbody tr")
            assert rows.count() == 3
            merged = page.locator(f"#contributions tr[data-sha='{shas[0]}']")
            assert f"{version[:10]} ×0.50" in merged.inner_text()  # lineage: version × weight
            assert merged.locator("td.ok").count() == 1  # it earned: no reason
            pooled = page.locator(f"#contributions tr[data-sha='{shas[1]}'] td.reason")
            assert pooled.inner_text() == "in the merge pool, not merged into a version yet"
            refused = page.locator(f"#contributions tr[data-sha='{shas[2]}'] td.reason")
            assert refused.inner_text().startswith("not admitted to the pool: no task's answer")
            assert page.inner_text("#sum-merged") == "1"
            assert page.get_attribute("#sum-accrued", "title").endswith("base units (exact)")
            out = ROOT / "test-artifacts" / "contributor-page.png"
            out.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(out), full_page=True)

            # a hostile address is refused with a message shown as text, never as markup
            _open(page, server + "/contributors/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
            assert "not an Ethereum address" in page.inner_text("#error")
            assert page.locator("img").count() == 0
            _open(page, server + "/contributors/0x" + "4" * 40)
            assert "no contributions from" in page.inner_text("#error")
            assert not errors, errors
        finally:
            browser.close()
