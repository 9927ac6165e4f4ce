"""The package layout's promises, read from the source with ``ast`` (docs/architecture.md):

* no import cycle between robustc's modules (function-level imports count too);
* imports point one way: ``specs`` and ``ir`` import nothing of robustc but ``errors``;
  ``backends`` read only ``ir``; ``compiler`` does not import ``verify``, ``analyses`` or
  ``cli``; ``verify`` does not import ``analyses`` or ``cli``; nothing imports ``cli`` but
  ``robustc/__main__.py`` (``python -m robustc``); ``api`` imports anything but ``cli``;
* no module imports a private (``_name``) from another module;
* at most ``errors.py``, ``__init__.py`` and ``__main__.py`` sit at the top of the package;
* ``robustc --version`` and ``robustc check`` import neither torch nor a solver.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import robustc

ROOT = Path(robustc.__file__).parent

#: Top-level part -> the robustc parts it may import (besides itself and ``errors``).
ALLOWED = {
    "errors": set(),
    "files": set(),  # writing outputs all or nothing, strict JSON: a leaf like errors
    "specs": set(),
    "ir": set(),
    "backends": {"ir", "files"},
    "compiler": {"ir", "specs", "backends", "files"},
    "runtime": {"ir", "files"},
    "verify": {"ir", "specs", "compiler", "backends", "runtime", "files"},
    "analyses": {"ir", "specs", "compiler", "backends", "runtime", "verify", "files"},
    "cli": {"ir", "specs", "compiler", "backends", "runtime", "verify", "analyses", "files"},
    "api": {"ir", "specs", "compiler", "backends", "runtime", "verify", "analyses", "files"},
    "": {"api"},  # robustc/__init__.py: robustc.api's names, imported on first use
    "__main__": {"cli"},  # python -m robustc
}


def _module_name(path: Path) -> str:
    parts = ["robustc", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _imports(name: str, path: Path, modules: dict[str, Path]):
    """(imported module, imported names) for every robustc import of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "robustc":
                    yield alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "robustc":
                continue
            names = []
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:  # `from robustc.x import submodule`
                    yield sub, ()
                else:
                    names.append(alias.name)
            if names:
                yield target, tuple(names)


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    modules = _modules()
    g = nx.DiGraph()
    for name, path in modules.items():
        g.add_node(name, path=path)
        for target, names in _imports(name, path, modules):
            g.add_edge(name, target, names=names)
    return g


def test_the_reader_sees_the_imports(graph):
    """A check that cannot fail is a defect: the reader must find known edges."""
    assert graph.has_edge("robustc.verify.pipeline", "robustc.verify.milp")
    assert graph.has_edge("robustc.cli.main", "robustc.cli.common")
    assert ("robustc.ir.graph", "robustc.errors") in graph.edges


def test_no_import_cycles(graph):
    modules = set(_modules())
    # A package's __init__ re-exporting its own submodules is not a cycle of design.
    edges = [(a, b) for a, b in graph.edges if b in modules
             and not (graph.nodes[a].get("path", Path()).name == "__init__.py"
                      and b.startswith(a + "."))]
    cycles = list(nx.simple_cycles(nx.DiGraph(edges)))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles)


def test_imports_point_one_way(graph):
    wrong = []
    for a, b in graph.edges:
        pa, pb = _part(a), _part(b)
        if pb in (pa, "errors", ""):  # robustc/__init__.py holds only the version and errors
            continue
        if pb not in ALLOWED[pa]:
            wrong.append(f"{a} imports {b}")
    assert not wrong, "\n".join(wrong)


def test_no_private_names_cross_modules(graph):
    wrong = [f"{a} imports {b}.{n}" for a, b, data in graph.edges(data=True)
             for n in data["names"] if n.startswith("_") and not n.startswith("__")]
    assert not wrong, "\n".join(wrong)


def test_only_errors_and_init_at_the_top():
    loose = sorted(p.name for p in ROOT.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py", "errors.py"]
    packages = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").exists())
    assert packages == sorted(k for k in ALLOWED if k not in ("", "errors", "__main__"))


@pytest.mark.parametrize("argv", [["--version"], ["check", "--no-network", "SPEC"]])
def test_light_commands_import_no_torch_or_solver(argv, tmp_path):
    spec = tmp_path / "a.rspec"
    spec.write_text('network n = onnx("n.onnx")\n', encoding="utf-8")
    argv = [str(spec) if a == "SPEC" else a for a in argv]
    code = ("import sys\nfrom robustc.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'highspy', 'gurobipy', 'z3', 'onnxruntime'})\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
