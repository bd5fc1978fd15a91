"""Fingerprints of what shaped an output folder, so a changed setting never resumes stale work.

A folder that later calls resume or skip (an experiment's run folder, a training's checkpoints)
carries ``fingerprint.json``. When the settings that made it differ from today's, :func:`claim`
moves the folder aside to ``<parent>/.superseded/<name>-<old fingerprint>`` — kept, never deleted —
and the work starts over in a fresh folder. A folder without the file (made before fingerprints
existed) is adopted as it is, so older work dirs keep resuming.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reasoningrec.io import json_default, read_json, write_json

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"
SUPERSEDED_DIR = ".superseded"


def digest(data: Any) -> str:
    """16 hex digits of the SHA-256 of ``data`` as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def frame_digest(frame, columns: Sequence[str]) -> str:
    """Digest of the given columns of a DataFrame, row order included (index ignored)."""
    import pandas as pd

    present = [c for c in columns if c in frame.columns]
    hashed = pd.util.hash_pandas_object(frame[present].reset_index(drop=True), index=False)
    return hashlib.sha256(",".join(present).encode() + hashed.to_numpy().tobytes()).hexdigest()[:16]


def stored(folder: str | Path) -> str | None:
    """The fingerprint a folder was made with; ``None`` when it has none (or it is unreadable)."""
    path = Path(folder) / FINGERPRINT_FILE
    try:
        value = read_json(path).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def retire(folder: str | Path, tag: str) -> Path:
    """Move ``folder`` to ``<parent>/.superseded/<name>-<tag>`` (``-2``, ``-3``... when taken)."""
    folder = Path(folder)
    parking = folder.parent / SUPERSEDED_DIR
    parking.mkdir(parents=True, exist_ok=True)
    target, n = parking / f"{folder.name}-{tag}", 1
    while target.exists():
        n += 1
        target = parking / f"{folder.name}-{tag}-{n}"
    os.replace(folder, target)
    return target


def claim(folder: str | Path, fingerprint: str, settings: Mapping[str, Any] | None = None) -> Path | None:
    """Make ``folder`` belong to ``fingerprint``: a folder made with another one is retired first.

    Returns where the retired folder went, or ``None`` when nothing was moved. Writes
    ``fingerprint.json`` (the fingerprint and the ``settings`` it digests, for a human diff).
    """
    folder = Path(folder)
    previous = stored(folder) if folder.is_dir() else None
    retired = None
    if previous is not None and previous != fingerprint:
        retired = retire(folder, previous)
        log.warning(
            "%s was made with other settings (fingerprint %s, now %s): moved to %s and started over",
            folder,
            previous,
            fingerprint,
            retired,
        )
    folder.mkdir(parents=True, exist_ok=True)
    if previous != fingerprint:
        write_json(folder / FINGERPRINT_FILE, {"fingerprint": fingerprint, "settings": dict(settings or {})})
    return retired
