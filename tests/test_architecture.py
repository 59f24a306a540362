"""The package's rooms: imports flow one way (ARCHITECTURE.md), no two modules import each
other, every module imports alone, and every room says its job in its docstring.

The import graph is read with ``ast`` from the source, function-level (lazy) imports
included, so a cycle hidden inside a function is found too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Each room and its rank: a module may import from rooms of a lower rank and from its own room.
RANKS = {
    "base": 0,  # errors, config, _lazy, _options, _version: imported by everyone, import nothing of ours
    "text": 1,
    "sources": 2,
    "models": 3,
    "store": 4,
    "ingest": 5,
    "retrieval": 5,
    "facade": 6,  # mmembed/__init__.py, index.py, doctor.py and derived.py
    "serve": 6,  # the web app and galleries: handed an Index, never imports the facade
    "cli": 7,
}
BASE = {"mmembed._lazy", "mmembed._options", "mmembed._version", "mmembed.errors", "mmembed.config"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / "mmembed").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    for path in sorted((ROOT / "cli").glob("*.py")):
        name = "mmembed.cli" if path.stem == "__init__" else f"mmembed.cli.{path.stem}"
        found[name] = path
    return found


MODULES = _modules()


def _room(module: str) -> str:
    if module in BASE:
        return "base"
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("index", "doctor", "derived", "__main__"):
        return "cli" if module == "mmembed.__main__" else "facade"
    return parts[1]


def _imports(module: str, path: Path) -> set[str]:
    """The mmembed modules ``module`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            # ``from . import derived`` imports the module, not (for this graph) the package
            names = submodules + ([target] if len(submodules) < len(node.names) else [])
        else:
            continue
        for name in names:
            # the deepest known module the name refers to (``from . import x`` may name a module)
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_import_of_ours_names_a_module_that_exists() -> None:
    """``from mmembed.x import y`` inside a function fails only when it runs: find it here."""
    missing = []
    for module, path in MODULES.items():
        is_package = path.name == "__init__.py"
        package = module if is_package else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    target = ".".join(base[: len(base) - (node.level - 1)] + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] == "mmembed" and target not in MODULES:
                    missing.append(f"{module}: from {target} import ...")
            elif isinstance(node, ast.Import):
                missing += [f"{module}: import {a.name}" for a in node.names
                            if a.name.split(".")[0] == "mmembed" and a.name not in MODULES]
    assert not missing, "imports of modules that do not exist:\n" + "\n".join(missing)


def test_the_graph_is_read() -> None:
    """Guards the test itself: known edges must be found, or every check below passes vacuously."""
    assert "mmembed.store.snapshot" in GRAPH["mmembed.store.table"]
    assert "mmembed.models.text_tower" in GRAPH["mmembed.retrieval.quick"]  # a function-level import
    assert "mmembed.cli.app" in GRAPH["mmembed.cli.search"]
    assert len(MODULES) > 30


def test_no_import_cycles() -> None:
    cycles = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_flow_one_way() -> None:
    """Down the ranks or within a room; never up, never across rooms of one rank (ingest/retrieval)."""
    wrong = []
    for module, targets in GRAPH.items():
        room = _room(module)
        for target in targets:
            other = _room(target)
            if other == room:
                continue
            if RANKS[other] >= RANKS[room]:
                wrong.append(f"{module} ({room}) imports {target} ({other})")
    assert not wrong, "imports against the flow:\n" + "\n".join(sorted(wrong))


def test_every_room_says_its_job() -> None:
    for room in ("text", "sources", "models", "store", "ingest", "retrieval"):
        doc = ast.get_docstring(ast.parse((ROOT / "mmembed" / room / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()) == 1, f"mmembed/{room}/__init__.py needs a one-line docstring"


def test_every_module_imports_alone() -> None:
    """Each module imported first, in a clean state of mmembed's modules (one interpreter, the
    package purged between imports): an order-dependent import would fail here."""
    script = (
        "import importlib, sys\n"
        f"names = {sorted(m for m in MODULES if m != 'mmembed.__main__')!r}\n"  # __main__ runs the CLI
        "failed = []\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m == 'mmembed' or m.startswith('mmembed.')]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_room_exports_a_name_of_one_of_its_modules() -> None:
    """``from mmembed.sources import walk`` must give the function even after the module that
    defines it was imported: a submodule named ``walk`` would take the name over."""
    clashes = []
    for room in ("text", "sources", "models", "store", "ingest", "retrieval"):
        tree = ast.parse((ROOT / "mmembed" / room / "__init__.py").read_text())
        exports = next(ast.literal_eval(n.value) for n in tree.body
                       if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_EXPORTS")
        modules = {p.stem for p in (ROOT / "mmembed" / room).glob("*.py")}
        clashes += [f"mmembed.{room}.{name}" for name in exports if name in modules]
    assert not clashes, clashes


def test_public_api_is_still_importable() -> None:
    """Everything ``mmembed`` offered before the move, and the old module names that became rooms."""
    script = (
        "import mmembed\n"
        "for name in mmembed.__all__:\n"
        "    getattr(mmembed, name)\n"
        "from mmembed.store import Store, TableMeta\n"
        "from mmembed.sources import walk, load_image, DiscoveredFile\n"
        "from mmembed.ingest import IngestReport, ImageDecoder, run_ingest\n"
        "from mmembed.cli import app, main\n"
        "assert callable(mmembed.search) and not isinstance(mmembed.search, type(mmembed))\n"
        "import mmembed.retrieval.quick\n"
        "assert callable(mmembed.search)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
