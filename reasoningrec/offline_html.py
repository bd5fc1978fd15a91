"""HTML that renders without a network: CDN scripts, styles and fonts replaced by vendored copies.

Great Expectations' Data Docs load Bootstrap, jQuery, bootstrap-table, Font Awesome and Vega from
CDNs, and their logo from S3; offline such a page is unstyled and its index table is empty (the
table is drawn by bootstrap-table). :func:`make_site_offline` copies the vendored files
(``webassets/vendor/``, fetched from npm by ``tools/vendor_web_assets.py``; ``manifest.json`` says
which URL each stands for) into the site and points every page and stylesheet at them, by a path
relative to the file, so the site still works when moved or opened from ``file://``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
from pathlib import Path

from reasoningrec.io import atomic_path

log = logging.getLogger(__name__)

WEBASSETS = Path(__file__).resolve().parent / "webassets"
VENDOR = WEBASSETS / "vendor"
DVC_PLOTS_TEMPLATE = WEBASSETS / "dvc_plots.html"
SITE_VENDOR = Path("static") / "vendor"  # where the copies go inside a Data Docs site
GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
# GX's remote images without a file of the same name in the site's static/images.
GX_IMAGE_STANDINS = {"full_logo_dark.png": "logo-long.png"}

# What a browser fetches by itself: script/img/iframe sources, stylesheet and icon links, CSS url()/@import.
_REMOTE = re.compile(
    r"""<(?:script|img|iframe|source|embed)\b[^>]*?\ssrc\s*=\s*["']((?:https?:)?//[^"']+)["'][^>]*>"""
    r"""|<link\b[^>]*?\shref\s*=\s*["']((?:https?:)?//[^"']+)["'][^>]*>"""
    r"""|url\(\s*["']?((?:https?:)?//[^"')]+)["']?\s*\)"""
    r"""|@import\s+["']((?:https?:)?//[^"']+)["']""",
    re.IGNORECASE,
)
_SRI = re.compile(r"""\s(?:integrity|crossorigin)\s*=\s*["'][^"']*["']""", re.IGNORECASE)


@functools.cache
def vendored_urls() -> dict[str, str]:
    """CDN URL -> vendored file (relative to ``webassets/vendor``)."""
    return json.loads((VENDOR / "manifest.json").read_text(encoding="utf-8"))["urls"]


def remote_resources(text: str) -> list[str]:
    """URLs a browser would load from the network to render ``text`` (HTML or CSS); links are not loads."""
    return [next(g for g in match.groups() if g) for match in _REMOTE.finditer(text)]


def localize(text: str, static: str, images: frozenset[str] = frozenset()) -> str:
    """``text`` with every vendored CDN URL, and every GX image URL whose file is in ``images`` (the
    names in the site's ``static/images``), pointing under ``static`` (the relative path from the
    file to the site's ``static/`` folder). Subresource-integrity and CORS attributes go too: a
    ``file://`` page has no origin, so a ``crossorigin`` script would not load."""

    def tag(match: re.Match) -> str:
        whole = match.group(0)
        url = next(g for g in match.groups() if g)
        local = _local(url, static, images)
        if local is None:
            return whole
        return _SRI.sub("", whole.replace(url, local)) if whole.startswith("<") else whole.replace(url, local)

    return _REMOTE.sub(tag, text)


def _local(url: str, static: str, images: frozenset[str]) -> str | None:
    urls = vendored_urls()
    if url in urls:
        return f"{static}/vendor/{urls[url]}"
    if url.startswith(GX_ASSETS):
        name = url[len(GX_ASSETS) :].split("?")[0]
        name = name if name in images else GX_IMAGE_STANDINS.get(name, "")
        return f"{static}/images/{name}" if name in images else None
    return None


def make_site_offline(site: str | Path) -> list[str]:
    """Copy the vendored files into ``site/static/vendor`` and rewrite the site's HTML and CSS files
    to use them. Returns the remote resources still referenced (logged: none expected)."""
    site = Path(site)
    target = site / SITE_VENDOR
    shutil.copytree(VENDOR, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("manifest.json"))
    images = frozenset(p.name for p in (site / "static" / "images").glob("*"))
    left: list[str] = []
    for path in sorted([*site.rglob("*.html"), *(site / "static").rglob("*.css")]):
        if target in path.parents:
            continue
        text = path.read_text(encoding="utf-8")
        static = Path(os.path.relpath(site / "static", path.parent)).as_posix()
        new = localize(text, static, images)
        if new != text:
            with atomic_path(path) as tmp:
                Path(tmp).write_text(new, encoding="utf-8")
        left += [f"{path.relative_to(site)}: {url}" for url in remote_resources(new)]
    if left:
        log.warning("Data Docs in %s still load from the network: %s", site, ", ".join(left))
    return left
