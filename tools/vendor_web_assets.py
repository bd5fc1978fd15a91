"""Fetch the scripts, styles and fonts that Great Expectations' Data Docs load from CDNs, from the npm
registry, into ``reasoningrec/webassets/vendor/`` with a manifest (what URL each file stands for, its
package, licence and SHA-256).

    python -m tools.vendor_web_assets            # fetch with `npm pack`, write files + manifest
    python -m tools.vendor_web_assets --check    # the committed files still match the manifest

The CDN URLs are the ones GX 1.x's templates reference (``great_expectations/render/view/templates``);
jsDelivr and unpkg serve npm packages, so ``npm pack name@version`` gives the same files. Where a URL
names a floating version (``vega@5``), the newest release of that major version at vendoring time is
taken and recorded. `reasoningrec.offline_html` rewrites Data Docs pages to these copies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "reasoningrec" / "webassets" / "vendor"
MANIFEST = VENDOR / "manifest.json"

# URL (as GX writes it) -> (npm package@version, file inside the package, file under vendor/)
ASSETS: dict[str, tuple[str, str, str]] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap@4.3.1",
        "dist/css/bootstrap.min.css",
        "bootstrap/bootstrap.min.css",
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap@4.3.1",
        "dist/js/bootstrap.min.js",
        "bootstrap/bootstrap.min.js",
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery@3.7.1", "dist/jquery.min.js", "jquery/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js@1.12.9",
        "dist/umd/popper.min.js",
        "popper/popper.min.js",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": (
        "bootstrap-table@1.19.1",
        "dist/bootstrap-table.min.css",
        "bootstrap-table/bootstrap-table.min.css",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": (
        "bootstrap-table@1.19.1",
        "dist/bootstrap-table.min.js",
        "bootstrap-table/bootstrap-table.min.js",
    ),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "bootstrap-table@1.19.1",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
        "bootstrap-table/bootstrap-table-filter-control.min.js",
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "bootstrap-table@1.19.0",
        "dist/extensions/filter-control/bootstrap-table-filter-control.css",
        "bootstrap-table/bootstrap-table-filter-control.css",
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "bootstrap-table@1.19.0",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
        "bootstrap-table/bootstrap-table-filter-control.min.css",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "bootstrap-datepicker@1.9.0",
        "dist/css/bootstrap-datepicker.min.css",
        "bootstrap-datepicker/bootstrap-datepicker.min.css",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "bootstrap-datepicker@1.9.0",
        "dist/js/bootstrap-datepicker.min.js",
        "bootstrap-datepicker/bootstrap-datepicker.min.js",
    ),
    # GX links the unminified file (880 kB); the minified one of the same release has the same rules.
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "@forevolve/bootstrap-dark@1.1.0",
        "dist/css/bootstrap-prefers-dark.min.css",
        "bootstrap-dark/bootstrap-prefers-dark.min.css",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free@6.6.0",
        "css/all.min.css",
        "fontawesome/css/all.min.css",
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega@5", "build/vega.min.js", "vega/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite@5", "build/vega-lite.min.js", "vega/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vega-embed@6", "build/vega-embed.min.js", "vega/vega-embed.min.js"),
}
# Files a vendored file loads itself (relative to it): Font Awesome's web fonts. Browsers take the
# WOFF2 source of each @font-face; the TrueType fallbacks are left out.
EXTRAS: list[tuple[str, str, str]] = [
    ("@fortawesome/fontawesome-free@6.6.0", f"webfonts/{name}.woff2", f"fontawesome/webfonts/{name}.woff2")
    for name in ("fa-brands-400", "fa-regular-400", "fa-solid-900", "fa-v4compatibility")
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pack(spec: str, into: Path) -> tuple[Path, dict]:
    """``npm pack`` one package into ``into``; its unpacked folder and package.json."""
    out = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(into)], check=True, capture_output=True, text=True
    ).stdout
    tarball = into / json.loads(out)[0]["filename"]
    folder = into / tarball.name.removesuffix(".tgz")
    with tarfile.open(tarball) as archive:
        archive.extractall(folder, filter="data")
    package = folder / "package"
    return package, json.loads((package / "package.json").read_text(encoding="utf-8"))


def vendor() -> dict:
    """Fetch every asset and write the files and the manifest; returns the manifest."""
    shutil.rmtree(VENDOR, ignore_errors=True)
    VENDOR.mkdir(parents=True)
    packs: dict[str, tuple[Path, dict]] = {}
    manifest: dict = {"urls": {}, "files": {}}
    with tempfile.TemporaryDirectory() as tmp:
        rows = [(url, *row) for url, row in ASSETS.items()] + [(None, *row) for row in EXTRAS]
        for url, spec, inner, target in rows:
            if spec not in packs:
                packs[spec] = _pack(spec, Path(tmp))
            folder, meta = packs[spec]
            destination = VENDOR / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / inner, destination)
            for name in ("LICENSE", "LICENSE.txt", "LICENSE.md"):
                if (folder / name).is_file():
                    shutil.copyfile(folder / name, destination.parent / f"LICENSE-{meta['name'].split('/')[-1]}")
            manifest["files"][target] = {
                "package": f"{meta['name']}@{meta['version']}",
                "path": inner,
                "license": meta.get("license"),
                "sha256": sha256(destination),
            }
            if url:
                manifest["urls"][url] = target
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def check() -> list[str]:
    """Problems with the committed files (missing, changed, a URL of the table not in the manifest)."""
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    problems = [f"{url}: not in the manifest" for url in ASSETS if url not in manifest["urls"]]
    for target, entry in manifest["files"].items():
        path = VENDOR / target
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif sha256(path) != entry["sha256"]:
            problems.append(f"{path}: SHA-256 differs from the manifest")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="verify the committed files, fetch nothing")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        print("\n".join(problems) or "web assets match the manifest")
        return 1 if problems else 0
    manifest = vendor()
    print(f"{len(manifest['files'])} files in {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
