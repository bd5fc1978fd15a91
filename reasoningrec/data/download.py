"""``reasoningrec download``: fetch public raw data, verify it, and place it atomically in data_dir.

Downloads stream to a temporary file beside the destination while hashing; the size (from
Content-Length) and any known SHA-256 are checked before anything is moved into place. Archives are
extracted into a temporary folder, their known members verified, then renamed into place, so an
interrupted or corrupt download never leaves a half-written dataset behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from reasoningrec.config import DATA_DIR_ENV
from reasoningrec.errors import ConfigError, DataError
from reasoningrec.io import file_sha256
from reasoningrec.summary import Summary

GROUPLENS = "https://files.grouplens.org/datasets/movielens"
AMAZON_2018 = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/categoryFilesSmall"
PAPER_REPO = "https://raw.githubusercontent.com/millenniumbismay/reasoningrec/main"

# SHA-256 of files inside the archives (GroupLens release files, byte for byte).
ML100K_MEMBERS = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
}
ML1M_MEMBERS = {
    "movies.dat": "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
    "users.dat": "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3",
}
PAPER_FILES = {
    "beauty": {
        "ratings.csv": "66669ebd1b804ed097428ac56e4072fbaa139640378dff17ceb7ed95c58b2f76",
        "processed_item_information.json": "4a47f1d5a0f425ebad991a01c876f7ec635aff7336ba301571f4d528e6c0705a",
    },
    "fashion": {
        "ratings.csv": "265dc42765c6d718be20822bfabca04e1a252ed5987521a7dbeed7d77947af97",
        "processed_item_information.json": "e673a376f17b8f7693f2c9dee28c398a191564565c9055e2e4f2b6682b7b41d3",
    },
}


@dataclass(frozen=True)
class Asset:
    """One thing to fetch: a plain file, or a zip whose single top folder becomes ``target``."""

    url: str
    target: str  # relative to data_dir
    kind: str = "file"  # "file" | "zip"
    sha256: str | None = None  # of the downloaded bytes
    members: dict[str, str] = field(default_factory=dict)  # zip: member path -> sha256


def plan(config) -> list[Asset]:
    """The assets that make up one dataset, from its source and path."""
    source, path = config.source, config.path
    if source == "movielens100k":
        return [Asset(f"{GROUPLENS}/ml-100k.zip", path, "zip", members=ML100K_MEMBERS)]
    if source == "movielens1m":
        return [Asset(f"{GROUPLENS}/ml-1m.zip", path, "zip", members=ML1M_MEMBERS)]
    if source == "amazon2018":
        category = Path(path).name.split("_5.")[0]
        return [Asset(f"{AMAZON_2018}/{category}_5.json.gz", path)]
    if source == "paper":
        name = Path(path).name
        if name not in PAPER_FILES:
            raise ConfigError(f"no known download for the paper's {name!r} data (known: {sorted(PAPER_FILES)})")
        # Layout of the authors' repository: <domain>/<domain>_data/processed_data/<file>.
        return [
            Asset(f"{PAPER_REPO}/{name}/{name}_data/processed_data/{file}", f"{path}/{file}", sha256=digest)
            for file, digest in PAPER_FILES[name].items()
        ]
    raise ConfigError(f"source {source!r} has no public download: place its files under ${DATA_DIR_ENV}/{path}")


def fetch(asset: Asset, data_dir: Path, *, timeout: float = 60.0) -> Path:
    """Download, verify and place one asset; returns the final path."""
    import httpx

    target = data_dir / asset.target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        try:
            with (
                os.fdopen(fd, "wb") as out,
                httpx.stream("GET", asset.url, timeout=timeout, follow_redirects=True) as response,
            ):
                response.raise_for_status()
                expected = response.headers.get("content-length")
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except httpx.HTTPError as exc:
            reason = (
                f"HTTP {exc.response.status_code}"
                if isinstance(exc, httpx.HTTPStatusError)
                else f"{type(exc).__name__}: {exc}"
            )
            raise DataError(
                asset.url,
                f"download failed ({reason}). Without internet, copy the files to "
                f"{data_dir} or point ${DATA_DIR_ENV} at a folder that has them",
            ) from None
        if expected is not None and int(expected) != size:
            raise DataError(asset.url, f"incomplete download: {size} of {expected} bytes")
        if asset.sha256 and digest.hexdigest() != asset.sha256:
            raise DataError(asset.url, f"checksum mismatch: expected sha256 {asset.sha256}, got {digest.hexdigest()}")
        if asset.kind == "zip":
            _extract(tmp, target, asset)
        else:
            os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _extract(archive: Path, target: Path, asset: Asset) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():  # refuse paths that would escape the folder
                    if name.startswith("/") or ".." in Path(name).parts:
                        raise DataError(asset.url, f"unsafe path in archive: {name!r}")
                zf.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise DataError(asset.url, f"not a valid zip archive ({exc})") from None
        tops = [p for p in staging.iterdir() if not p.name.startswith("__MACOSX")]
        root = tops[0] if len(tops) == 1 and tops[0].is_dir() else staging
        for member, expected in asset.members.items():
            path = root / member
            if not path.is_file():
                raise DataError(asset.url, f"archive lacks {member}")
            if file_sha256(path) != expected:
                raise DataError(asset.url, f"checksum mismatch for {member} inside the archive")
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(root, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class DownloadSummary(Summary):
    """What :func:`run_download` did: ``status`` is ``downloaded`` or ``already present``; ``files``
    the targets fetched now."""

    dataset: str
    status: str
    path: str
    files: list[str]


def run_download(params, dataset: str, *, force: bool = False, assets: list[Asset] | None = None) -> DownloadSummary:
    """Fetch every asset of ``dataset`` that is missing (all of them with ``force``)."""
    assets = plan(params.dataset(dataset)) if assets is None else assets
    data_dir = params.data_dir
    fetched = []
    for asset in assets:
        if (data_dir / asset.target).exists() and not force:
            continue
        fetched.append(str(fetch(asset, data_dir)))
    return DownloadSummary(
        dataset=dataset,
        status="downloaded" if fetched else "already present",
        path=str(data_dir / params.dataset(dataset).path),
        files=fetched,
    )
