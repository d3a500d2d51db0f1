"""Screenshot a running coordinator's live page (the README's picture comes from a demo run).

Drives Debian's chromium through Playwright, as the browser tests do: opens the page, waits for
its first data (``body[data-ready='1']``), lets the charts settle, and writes a full-page PNG.
Usage, with ``mergenet demo`` serving on port 8000 (it prints the URL after its summary)::

    python scripts/live_page_screenshot.py http://127.0.0.1:8000/ docs/live-page.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def screenshot(url: str, out: Path, width: int = 1400, height: int = 900) -> int:
    """Write the page at ``url`` to ``out``; the PNG's size in bytes."""
    from playwright.sync_api import sync_playwright

    if not url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise SystemExit("error: give the loopback URL of a running coordinator")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.wait_for_timeout(2_000)  # plotly's transitions and the first events
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    return out.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the live page, e.g. http://127.0.0.1:8000/")
    parser.add_argument("out", type=Path, help="where to write the PNG")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print("error: needs Debian's chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    size = screenshot(args.url, args.out)
    print(f"wrote {args.out} ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
