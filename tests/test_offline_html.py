"""Pages that load nothing from the network: vendored CDN files, rewritten pages, the DVC template."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from reasoningrec.offline_html import (
    DVC_PLOTS_TEMPLATE,
    VENDOR,
    localize,
    make_site_offline,
    remote_resources,
    vendored_urls,
)

REPO = Path(__file__).resolve().parents[1]
GX_PAGE = """<html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" integrity="sha384-ApNb"
 crossorigin="anonymous"></script>
<script src="https://cdn.example.org/unknown.js"></script>
<style>.brand {
  background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png'); }</style>
</head><body><a href="https://greatexpectations.io">a link is not a load</a>
<img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=20261201T1">
</body></html>"""


def test_localize_points_cdn_urls_at_the_copies_and_drops_integrity_attributes():
    page = localize(GX_PAGE, "../../static", frozenset({"logo-long.png"}))
    assert 'href="../../static/vendor/bootstrap/bootstrap.min.css"' in page
    popper = re.search(r"<script[^>]*popper[^>]*>", page).group(0)
    assert popper.split() == ["<script", 'src="../../static/vendor/popper/popper.min.js"', ">"]  # no SRI, no CORS
    assert 'src="../../static/images/logo-long.png"' in page
    assert "url('../../static/images/logo-long.png')" in page  # the dark logo has a local stand-in
    assert remote_resources(page) == ["https://cdn.example.org/unknown.js"]  # unknown: left, and reported
    assert "https://greatexpectations.io" in page
    # Without the image in the site, GX's logo stays remote (and is reported), never a broken local path.
    assert "https://great-expectations-web-assets" in localize(GX_PAGE, "static")


def test_remote_resources_finds_every_kind_of_load():
    text = """<script src="//cdn.x/a.js"></script><link rel=icon href='https://x/i.ico'>
    <img alt=x src="http://x/p.png"><iframe src="https://x/f"></iframe>
    <style>@import "https://x/s.css"; .a { background: url( "https://x/b.png" ) }</style>
    <a href="https://x/page">link</a><img src="data:image/png;base64,AAAA"><script src="local.js"></script>"""
    assert remote_resources(text) == [
        "//cdn.x/a.js",
        "https://x/i.ico",
        "http://x/p.png",
        "https://x/f",
        "https://x/s.css",
        "https://x/b.png",
    ]


def test_vendored_files_match_their_manifest():
    spec = importlib.util.spec_from_file_location("vendor_web_assets", REPO / "tools" / "vendor_web_assets.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.check() == []
    assert set(vendored_urls()) == set(tool.ASSETS)
    css = (VENDOR / "fontawesome" / "css" / "all.min.css").read_text(encoding="utf-8")
    for font in set(re.findall(r"url\(\.\./webfonts/([^)]+\.woff2)\)", css)):
        assert (VENDOR / "fontawesome" / "webfonts" / font).is_file(), font


def test_every_cdn_file_of_the_installed_gx_templates_is_vendored():
    """A GX upgrade that loads a new CDN file fails here (run tools/vendor_web_assets.py after adding it)."""
    import great_expectations

    templates = Path(great_expectations.__file__).parent / "render" / "view" / "templates"
    found = {
        url
        for path in templates.glob("*.j2")
        for url in remote_resources(path.read_text(encoding="utf-8"))
        if "{{" not in url
    }
    assert found and found <= set(vendored_urls()), sorted(found - set(vendored_urls()))


def test_make_site_offline_rewrites_pages_at_every_depth(tmp_path):
    site = tmp_path / "site"
    (site / "static" / "images").mkdir(parents=True)
    (site / "static" / "images" / "logo-long.png").write_bytes(b"png")
    (site / "static" / "styles").mkdir()
    (site / "static" / "styles" / "s.css").write_text(
        ".x { background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png') }"
    )
    deep = site / "validations" / "suite" / "run" / "time" / "batch.html"
    deep.parent.mkdir(parents=True)
    for page in (site / "index.html", deep):
        page.write_text(GX_PAGE.replace('<script src="https://cdn.example.org/unknown.js"></script>', ""))
    assert make_site_offline(site) == []
    assert 'href="static/vendor/bootstrap/bootstrap.min.css"' in (site / "index.html").read_text()
    assert 'href="../../../../static/vendor/bootstrap/bootstrap.min.css"' in deep.read_text()
    assert "url('../images/logo-long.png')" in (site / "static" / "styles" / "s.css").read_text()
    for target in vendored_urls().values():
        assert (site / "static" / "vendor" / target).is_file()
    assert not (site / "static" / "vendor" / "manifest.json").exists()
    assert make_site_offline(site) == []  # a second pass changes nothing


def test_dvc_plots_template_loads_nothing_and_is_the_repos_setting():
    from dvc_render.html import HTML

    text = DVC_PLOTS_TEMPLATE.read_text(encoding="utf-8")
    assert "{plot_divs}" in text and "{scripts}" not in text  # DVC would put Vega's CDN tags in {scripts}
    assert remote_resources(text) == []
    page = HTML(text).with_scripts('<script src="https://cdn.jsdelivr.net/npm/vega@5.20.2"></script>').embed()
    assert remote_resources(page) == []
    config = (REPO / ".dvc" / "config").read_text(encoding="utf-8")
    setting = re.search(r"html_template\s*=\s*(\S+)", config).group(1)
    assert (REPO / ".dvc" / setting).resolve() == DVC_PLOTS_TEMPLATE


def test_results_report_page_loads_nothing():
    from reasoningrec.report.blocks import Block
    from reasoningrec.report.render import render_html

    page = render_html([Block("h1", "Results"), Block("image", "plot", png=b"\x89PNG\r\n\x1a\n")])
    assert remote_resources(page) == []
    committed = REPO / "docs" / "results.html"
    if committed.is_file():
        assert remote_resources(committed.read_text(encoding="utf-8")) == []
