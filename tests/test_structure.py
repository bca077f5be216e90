"""The shape of the code: a kind is one folder. The contract layer (executor/) names no kind,
no kind imports another, and no module imports itself round a cycle."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

from executor.registry import all_kinds

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> Dict[str, Path]:
    out = {}
    for pkg in ("executor", "ymir_tasks"):
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(mods: Dict[str, Path]) -> Dict[str, Set[str]]:
    """module -> the modules of this tree it imports, at the top or inside a function."""
    graph: Dict[str, Set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[m].update(n for n in names if n in mods and n != m)
    return graph


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_and_no_kind_imports_another():
    graph = _imports(_modules())
    assert _cycles(graph) == []
    kinds = [k.name for k in all_kinds()]
    crossing = [(m, t) for m, targets in graph.items() for t in targets for k in kinds for other in kinds
                if other != k and m.startswith(f"ymir_tasks.{k}.") and
                (t == f"ymir_tasks.{other}" or t.startswith(f"ymir_tasks.{other}."))]
    assert crossing == []
    # the contract layer reaches the kinds only through the registry, at run time
    assert not [(m, t) for m, targets in graph.items() if m.startswith("executor") for t in targets
                if t.startswith("ymir_tasks")]


def _platform_words(tree: ast.AST) -> Set[int]:
    """The constants of IMAGE_CONFIG_DIR_NAMES: YMIR's folder names, one spelt like a kind ("det")."""
    out: Set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "IMAGE_CONFIG_DIR_NAMES" for t in targets):
                out.update(id(n) for n in ast.walk(node.value))
    return out


def test_only_the_platform_folder_names_are_exempt():
    tree = ast.parse('IMAGE_CONFIG_DIR_NAMES = {2: "det"}\nx = "det"\n')
    kept = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == "det"
            and id(n) not in _platform_words(tree)]
    assert kept == [2]


def test_the_contract_layer_names_no_kind():
    names = {k.name for k in all_kinds()}
    found = []
    for p in (ROOT / "executor").glob("*.py"):
        tree = ast.parse(p.read_text())
        exempt = _platform_words(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names \
                    and id(node) not in exempt:
                found.append(f"{p.name}:{node.lineno}: {node.value!r}")
    assert found == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
