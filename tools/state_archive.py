"""Carry a grid's work folder between machines as ONE archive (a lent GPU machine starts bare).

    python -m tools.state_archive export outputs/quality/work $OUT/state.tar.xz
    python -m tools.state_archive import .carry/state/state.tar.xz outputs/quality/work

The archive holds every file of the work folder byte for byte — the completion records compare
digests, so a file re-encoded on the way would make its stage run again — except the heavy,
re-creatable parts (:data:`HEAVY_PARTS`: adapters, checkpoints, converted models, caches, run
folders set aside) and lock files. Job logs keep their head and tail. It is compressed with xz, whose
window spans many files, so the columns every run of a dataset shares (users, labels, reference
texts) cost little more than once. Over ``limit`` bytes, the top-level files of each dataset folder
(the data stages' outputs, which the next grid call rebuilds) are left out; still over it, the export
fails (the device returns files of at most 16 MiB).
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("tools.state_archive")

HEAVY_PARTS = frozenset({"adapter", "checkpoints", "model", "models", "cache", ".superseded"})
ARCHIVE_LIMIT = 16 * 2**20
LOG_KEEP = 64 * 1024  # bytes of a job log kept (a quarter from its head, the rest from its tail)
XZ_PRESET = 6  # 8 MiB window: a dataset's runs sit next to each other in the archive


def wanted(relative: str) -> bool:
    """Whether a file of the work folder belongs in the archive. The copies of the package's web assets
    in each Data Docs site (``static/vendor``, 2 MB a site) are left out: import puts them back."""
    parts = Path(relative).parts
    vendored = any(parts[i : i + 2] == ("static", "vendor") for i in range(len(parts) - 1))
    return not (set(parts) & HEAVY_PARTS) and not relative.endswith(".lock") and not vendored


def rebuildable(relative: str) -> bool:
    """A top-level file of a dataset folder (``<dataset>/samples.parquet``): a data stage's output."""
    parts = Path(relative).parts
    return len(parts) == 2 and not parts[0].startswith(".")


def export_state(work: Path, archive: Path, limit: int = ARCHIVE_LIMIT) -> Path:
    """Write the archive of ``work`` (module docstring); return its path."""
    work, archive = Path(work), Path(archive)
    members = [
        (path, path.relative_to(work).as_posix())
        for path in sorted(work.rglob("*"))
        if path.is_file() and path.resolve() != archive.resolve() and wanted(path.relative_to(work).as_posix())
    ]
    _write(archive, members)
    if archive.stat().st_size > limit:
        log.warning(
            "state archive %.1f MiB > %.0f MiB: the data stages' files left out (rebuilt next call)",
            archive.stat().st_size / 2**20,
            limit / 2**20,
        )
        _write(archive, [(p, r) for p, r in members if not rebuildable(r)])
    size = archive.stat().st_size
    if size > limit:
        raise SystemExit(f"{archive}: {size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB limit")
    log.info("state archive %s: %.2f MiB, %d files", archive, size / 2**20, len(members))
    return archive


def import_state(archive: Path, work: Path) -> Path:
    """Unpack an :func:`export_state` archive into ``work`` (files already there are replaced)."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(work, filter="data")
    from reasoningrec.offline_html import make_site_offline

    for site in sorted(work.glob("*/validation/data_docs_*")):
        if (site / "index.html").is_file():
            make_site_offline(site)  # the web assets the export left out
    return work


def _write(archive: Path, members: Sequence[tuple[Path, str]]) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".{archive.name}.partial")
    with tarfile.open(partial, "w:xz", preset=XZ_PRESET) as tar:
        for path, relative in members:
            if relative.endswith(".log") and path.stat().st_size > LOG_KEEP:
                data = path.read_bytes()
                data = data[: LOG_KEEP // 4] + b"\n[... cut for the state archive ...]\n" + data[-3 * LOG_KEEP // 4 :]
                info = tarfile.TarInfo(relative)
                info.size, info.mtime = len(data), int(path.stat().st_mtime)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.add(path, arcname=relative)
    partial.replace(archive)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    out = sub.add_parser("export", help="work folder -> archive")
    out.add_argument("work", type=Path)
    out.add_argument("archive", type=Path)
    out.add_argument("--limit-mib", type=float, default=ARCHIVE_LIMIT / 2**20)
    into = sub.add_parser("import", help="archive -> work folder (a missing archive is not an error)")
    into.add_argument("archive", type=Path)
    into.add_argument("work", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.action == "export":
        export_state(args.work, args.archive, int(args.limit_mib * 2**20))
    elif args.archive.is_file():
        import_state(args.archive, args.work)
    else:
        log.warning("%s not found: starting without an earlier state", args.archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
