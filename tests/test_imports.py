"""Module dependencies point down only: no package module imports one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "reasoningrec"


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in its body, lazy imports included)."""
    modules: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    cycles = sorted(
        f"{a} <-> {b}"
        for a, targets in graph.items()
        for b in targets
        if a < b and a in graph.get(b, ()) and not (a.startswith(f"{b}.") or b.startswith(f"{a}."))
    )
    assert cycles == [], cycles


def test_the_package_never_imports_the_project_folders():
    graph_sources = [p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")]
    assert not any("sys.path.insert" in text for text in graph_sources)
    assert not any("import flows" in text or "from flows" in text for text in graph_sources)


def test_docs_show_the_stage_table():
    from reasoningrec.pipeline import markdown_table

    assert markdown_table() in (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_every_imported_package_name_exists():
    """Benchmarks and tools import lazily, inside functions, so a moved name would only fail when
    someone runs them: resolve every ``from reasoningrec... import name`` of the repository here."""
    import importlib

    missing = []
    for folder in ("reasoningrec", "benchmarks", "tools", "tests"):
        for path in sorted((PACKAGE.parent / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (
                    isinstance(node, ast.ImportFrom)
                    and node.level == 0
                    and node.module
                    and node.module.split(".")[0] == "reasoningrec"
                ):
                    continue
                try:
                    module = importlib.import_module(node.module)
                except ImportError as exc:
                    missing.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.module} ({exc})")
                    continue
                missing += [
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.module}.{alias.name}"
                    for alias in node.names
                    if not hasattr(module, alias.name) and not _is_submodule(node.module, alias.name)
                ]
    assert missing == [], "\n".join(missing)


def _is_submodule(package: str, name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(f"{package}.{name}") is not None
    except ModuleNotFoundError:
        return False
