"""The code's structure, measured from its source: lines and modules per layer, import
cycles inside the product, imports inside functions, and imports from serving into the lab.

The layers are the ones ``pyproject.toml``'s import-linter contracts name (serving: the
"serving apart from the lab" contract's source modules; lab: its forbidden modules); the
same lists are applied to an older tree given with ``--root`` (a module they do not name
counts as "unplaced"), so a before/after comparison uses one definition. Every import
statement counts, lazy ones (inside functions) included, as import-linter counts them.

    python scripts/structure.py                          # this checkout
    git worktree add /tmp/before c1355d3 && python scripts/structure.py --root /tmp/before
    python scripts/structure.py --json reports/structure.json
"""
from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hscc_core", "hscc_mri", "models", "preprocessing", "webapp")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" not in path.parts:
                out[_module_name(root, path)] = path
    if (root / "app.py").is_file():
        out["app"] = root / "app.py"
    return out


def _imports(name: str, path: Path) -> tuple[set[str], int]:
    """The modules ``name`` imports (absolute names, relative imports resolved) and how
    many of its import statements sit inside a function."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    inside = 0
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    nested = {id(n) for f in functions for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1] if node.level > 1 else base
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            found.add(stem)
            found |= {f"{stem}.{a.name}" for a in node.names}
        else:
            continue
        inside += id(node) in nested
    return found, inside


def _sibling(module: str, ancestor: str = "hscc_mri") -> str | None:
    """The child of ``ancestor`` that ``module`` is or lies in (``hscc_mri.report.data`` ->
    ``hscc_mri.report``); ``None`` outside it or for the package itself."""
    parts = module.split(".")
    if parts[0] != ancestor or len(parts) < 2:
        return None
    return ".".join(parts[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _contract(pyproject: Path) -> tuple[list[str], list[str]]:
    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    (serving,) = [c for c in contracts if c["name"].startswith("serving apart from the lab")]
    return list(serving["source_modules"]), [m for m in serving["forbidden_modules"] if m.startswith("hscc_mri")]


def _within(module: str, groups: list[str]) -> bool:
    return any(module == g or module.startswith(g + ".") for g in groups)


def measure(root: Path, contract_from: Path = ROOT / "pyproject.toml") -> dict[str, Any]:
    """The structure of the tree at ``root`` (see the module docstring)."""
    serving, lab = _contract(contract_from)
    serving = serving + ["app"]
    modules = _modules(root)
    layer_of: dict[str, str] = {}
    for name in modules:
        top = name.split(".")[0]
        if top == "hscc_mri":
            layer_of[name] = ("serving" if _within(name, serving) else "lab" if _within(name, lab)
                              else "dispatcher" if name in ("hscc_mri", "hscc_mri.__main__", "hscc_mri.cli")
                              else "unplaced")
        elif top in ("webapp", "app"):
            layer_of[name] = "app"
        else:
            layer_of[name] = {"hscc_core": "library", "models": "models", "preprocessing": "scan reading"}[top]
    lines: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    inside: dict[str, int] = defaultdict(int)
    graph: dict[str, set[str]] = defaultdict(set)
    serving_to_lab: list[str] = []
    for name, path in modules.items():
        layer = layer_of[name]
        lines[layer] += len(path.read_text().splitlines())
        count[layer] += 1
        imported, nested = _imports(name, path)
        inside[name.split(".")[0]] += nested
        here = _sibling(name)
        for target in imported:
            there = _sibling(target)
            if here and there and here != there and there in {_sibling(m) for m in modules}:
                graph[here].add(there)
            if layer in ("serving", "app") and _within(target, lab):
                serving_to_lab.append(f"{name} -> {target}")
    cycles = _cycles(graph)
    largest = sorted(((len(p.read_text().splitlines()), n) for n, p in modules.items() if n.startswith("hscc_mri")),
                     reverse=True)[:5]
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {"commit": commit.stdout.strip() or None, "lines": dict(lines), "modules": dict(count), "imports_inside_functions": dict(inside),
            "product_cycles": cycles, "serving_imports_of_lab": sorted(set(serving_to_lab)),
            "largest_product_modules": [{"module": n, "lines": k} for k, n in largest]}


def table(result: dict[str, Any]) -> str:
    """A plain-text summary of :func:`measure`'s result."""
    rows = [f"{'layer':<14}{'modules':>8}{'lines':>8}"]
    for layer in ("app", "serving", "lab", "dispatcher", "unplaced", "library", "scan reading", "models"):
        if layer in result["lines"]:
            rows.append(f"{layer:<14}{result['modules'][layer]:>8}{result['lines'][layer]:>8}")
    rows.append(f"import cycles inside hscc_mri: {len(result['product_cycles'])} "
                + "; ".join(" <-> ".join(c) for c in result["product_cycles"]))
    rows.append(f"serving/app imports of lab modules: {len(result['serving_imports_of_lab'])}")
    rows.append("imports inside functions: " + ", ".join(f"{k} {v}" for k, v in
                                                         sorted(result["imports_inside_functions"].items())))
    rows.append("largest product modules: " + ", ".join(f"{m['module']} {m['lines']}"
                                                        for m in result["largest_product_modules"]))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="the tree to measure (default: this checkout)")
    ap.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = ap.parse_args(argv)
    result = measure(args.root.resolve())
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
