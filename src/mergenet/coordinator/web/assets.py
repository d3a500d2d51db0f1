"""The live page's files: its HTML/JS/CSS beside this module, and plotly.js from the installed
``plotly`` wheel (installed by pip, never vendored, served from here so the page works with no
internet). The routes ask this module for a file by name and never see the folders.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from mergenet.errors import NotFound, Unavailable

STATIC = Path(__file__).parent
INDEX = STATIC / "index.html"
CONTRIBUTOR = STATIC / "contributor.html"
PAGE_FILES = {
    "app.js": "text/javascript",
    "contributor.js": "text/javascript",
    "numbers.js": "text/javascript",
    "style.css": "text/css",
}
"""The files ``/web/{name}`` serves, with their media types; nothing else in the folder is."""


def page_file(name: str) -> tuple[Path, str]:
    """One of :data:`PAGE_FILES` as (path, media type)."""
    if name not in PAGE_FILES:
        raise NotFound(f"no file {name}")
    return STATIC / name, PAGE_FILES[name]


def plotly_js() -> Path:
    """plotly.js as shipped inside the ``plotly`` wheel."""
    path = Path(str(resources.files("plotly"))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise Unavailable("plotly.min.js is missing: pip install plotly")
    return path
