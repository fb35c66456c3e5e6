"""The layering of audiodb/, checked on the source with ``ast`` (README, "Layout").

Each rule here fails the suite when it is broken: an import across layers the
wrong way, ``click`` outside cli/, ``duckdb`` outside audiodb/store/, a
``_private`` name imported from another module, an import circle, a module over
500 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500

#: part -> parts of audiodb it must never import (module-level or inside functions).
FORBIDDEN = {
    "audiodb.analysis": {
        "audiodb.store",
        "audiodb.index",
        "audiodb.query",
        "audiodb.maps",
        "audiodb.library",
        "audiodb.cli",
    },
    "audiodb.store": {"audiodb.index", "audiodb.query", "audiodb.maps", "audiodb.library", "audiodb.cli"},
    "audiodb.index": {"audiodb.query", "audiodb.maps", "audiodb.library", "audiodb.cli"},
    "audiodb.query": {"audiodb.index", "audiodb.maps", "audiodb.library", "audiodb.cli"},
    "audiodb.maps": {"audiodb.index", "audiodb.library", "audiodb.cli"},
    "audiodb.library": {"audiodb.cli"},
    "audiodb.errors": {"audiodb"},
    "audiodb.paths": {"audiodb"},
    "audiodb.demo": {"audiodb"},
    "audiodb.cli": {"audiodb.store", "audiodb.index"},
}
#: third-party packages a part must never import.
FORBIDDEN_EXTERNAL = {
    "audiodb.analysis": {"duckdb", "pyarrow", "click", "sklearn", "umap", "hdbscan", "plotly"},
    "audiodb.store": {"click", "sklearn", "umap", "hdbscan", "plotly"},
}
#: only these parts may import these packages.
ONLY_IN = {"click": ("audiodb.cli",), "duckdb": ("audiodb.store",)}


def _modules() -> dict[str, Path]:
    found = {}
    for base, package in (
        (ROOT / "audiodb", "audiodb"),
        (ROOT / "cli", "audiodb.cli"),
        (ROOT / "migrations", "audiodb.migrations"),
    ):
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _imports(name: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import in the file, resolved to absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [alias.name for alias in node.names]
            # `from . import x` imports the module x.
            if f"{target}.{names[0]}" in MODULES and all(f"{target}.{n}" in MODULES for n in names):
                out += [(f"{target}.{n}", [], node.lineno) for n in names]
            else:
                out.append((target, names, node.lineno))
    return out


def _part(module: str) -> str:
    for part in sorted(FORBIDDEN, key=len, reverse=True):
        if module == part or module.startswith(part + "."):
            return part
    return module


def _within(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def test_the_layout_has_the_five_parts():
    for part in ("analysis", "store", "index", "query", "maps"):
        assert (ROOT / "audiodb" / part / "__init__.py").is_file(), f"audiodb/{part}/ is missing"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_follow_the_layers(name):
    path = MODULES[name]
    part = _part(name)
    broken = []
    for target, _names, line in _imports(name, path):
        for banned in FORBIDDEN.get(part, ()):
            if _within(target, banned) and not (banned == "audiodb" and _within(target, part)):
                broken.append(f"line {line}: {part} imports {target}")
        top = target.split(".")[0]
        if top in FORBIDDEN_EXTERNAL.get(part, ()):
            broken.append(f"line {line}: {part} imports {top}")
        if top in ONLY_IN and not any(_within(name, p) for p in ONLY_IN[top]):
            broken.append(f"line {line}: {top} is imported outside {ONLY_IN[top]}")
    assert not broken, f"{_rel(path)}: " + "; ".join(broken)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_private_name_is_imported_from_another_module(name):
    path = MODULES[name]
    taken = [
        f"line {line}: {target}.{n}"
        for target, names, line in _imports(name, path)
        for n in names
        if n.startswith("_") and not n.startswith("__") and _within(target, "audiodb")
    ]
    assert not taken, f"{_rel(path)} imports private names: {taken}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_are_small(name):
    lines = MODULES[name].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{_rel(MODULES[name])} has {lines} lines (at most {MAX_LINES})"


def test_no_import_circle():
    # Module-level imports only (imports inside functions run later and cannot deadlock a load),
    # and not the CLI's registration of its command modules, which import the group back.
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {n.lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}
        graph[name] = {
            t
            for t, _n, line in _imports(name, path)
            if line in top_level and t in MODULES and t != name and not _within(name, "audiodb.cli")
        }
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(nxt) :] + [nxt]))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for name in sorted(graph):
        if name not in seen:
            visit(name)


def test_the_rules_catch_a_break(tmp_path, monkeypatch):
    # The checker itself: a store module importing click, a private name and a query -> index import are caught.
    fake = tmp_path / "bad.py"
    fake.write_text("from click import echo\nfrom ..index.scan import _plan\n", encoding="utf-8")
    monkeypatch.setitem(MODULES, "audiodb.store.bad", fake)
    with pytest.raises(AssertionError, match="store imports audiodb.index.scan"):
        test_imports_follow_the_layers("audiodb.store.bad")
    with pytest.raises(AssertionError, match="click is imported outside"):
        test_imports_follow_the_layers("audiodb.store.bad")
    with pytest.raises(AssertionError, match="private names"):
        test_no_private_name_is_imported_from_another_module("audiodb.store.bad")


def test_a_scan_gets_as_far_as_making_the_library_without_numpy(tmp_path):
    # `audiodb scan` of a new library imports duckdb and starts making the library in a thread
    # before numpy loads, so both happen at once (index.scan: Creating, then the analysis).
    code = (
        "import sys\n"
        "from audiodb.cli import main\n"
        "main.get_command(None, 'scan')\n"
        "import audiodb.index.scan, audiodb.store.connection, audiodb.store.tracks\n"
        "print(sorted(m for m in ('numpy', 'duckdb', 'soundfile', 'librosa') if m in sys.modules))\n"
    )
    # From tmp_path: the installed audiodb (with its audiodb.cli), not the checkout's folder.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
