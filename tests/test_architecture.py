"""The import rules of the layers (docs/layout.md), checked on the real code.

* ``hscc_core`` is the compressor library: standard library, torch, numpy, scipy,
  safetensors, tqdm and threadpoolctl only (the last keeps LAPACK single-threaded beside
  torch's workers: 3-20x faster eigendecompositions on 2 cores);
* ``models`` imports nothing from the repository; ``preprocessing`` only ``models``;
  ``hscc_mri`` (the product) never the app; the app sits on top;
* no import cycles inside ``hscc_mri``: of the modules and subpackages of any one package,
  none imports another that (directly or around a loop) imports it back, lazy imports
  included;
* serving apart from the lab: the app and the modules a request goes through (load,
  deploy, preprocess, infer; listed in the contract) import nothing of training,
  evaluation, peers, the report or the lab's commands, lazy imports included (and none is
  loaded when the app starts).

The layer contracts are import-linter's (``[tool.importlinter]`` in pyproject.toml); the
library's allow-list is read from its source here, so a new dependency fails loudly.
"""
from __future__ import annotations

import ast
import subprocess
import sys

from tests.paths import ROOT

LIBRARY_DEPENDENCIES = {"torch", "numpy", "scipy", "safetensors", "tqdm", "threadpoolctl"}
PRODUCT_PACKAGES = ("models", "preprocessing", "hscc_mri", "webapp", "gradio", "matplotlib")


def _imported_roots(path) -> set[str]:
    """Top-level names of the absolute imports of one source file (relative ones are local)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_import_linter_contracts_are_kept():
    run = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports; "
                          "raise SystemExit(lint_imports())"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "7 kept, 0 broken" in run.stdout


#: Modules of the product in neither group of the serving/lab contract: the package, its
#: ``python -m`` entry and the command dispatcher (which registers every command's parser).
NEITHER_SERVING_NOR_LAB = {"hscc_mri", "hscc_mri.__main__", "hscc_mri.cli"}


def _serving_contract() -> dict:
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c["name"].startswith("serving apart from the lab")]
    return contract


def _within(module: str, groups) -> bool:
    return any(module == g or module.startswith(g + ".") for g in groups)


def test_every_product_module_is_serving_or_lab():
    """A new module of ``hscc_mri`` is placed on purpose: listed in the serving/lab contract
    on one side or the other (docs/layout.md), so the rule cannot miss it."""
    contract = _serving_contract()
    groups = contract["source_modules"] + contract["forbidden_modules"]
    modules = set()
    for path in (ROOT / "hscc_mri").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    unplaced = sorted(m for m in modules - NEITHER_SERVING_NOR_LAB if not _within(m, groups))
    assert not unplaced, f"list these in the serving/lab contract (pyproject.toml): {unplaced}"


def test_the_app_script_imports_no_lab_module():
    """``app.py`` is a script, outside import-linter's packages: its imports (lazy ones
    included) are held to the serving side's rule here."""
    forbidden = _serving_contract()["forbidden_modules"]
    tree = ast.parse((ROOT / "app.py").read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    assert "webapp.models" in names
    assert not [m for m in names if _within(m, forbidden)]


def test_loading_the_app_and_the_predictor_loads_no_lab_module():
    """What the contract says of the source holds in a running process: importing the app's
    modules and the predictor, and parsing ``hscc-mri predict``'s options through the
    command dispatcher (which imports only the command that runs), loads none of the lab's
    modules (matplotlib aside: gradio's own); the full ``--help`` still lists every command."""
    lab = [m for m in _serving_contract()["forbidden_modules"] if m.startswith("hscc_mri")]
    code = ("import sys, webapp.ui, webapp.models, hscc_mri.predictor, hscc_mri.batch_predict\n"
            "from hscc_mri.cli import main\ntry:\n    main(['predict', '--help'])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in sys.modules if m.startswith({tuple(lab)!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--no-safety-net" in out.stdout  # predict's own help was printed
    assert out.stdout.strip().splitlines()[-1] == "[]"
    from hscc_mri.cli import COMMANDS, build_parser

    assert all(name in build_parser().format_help() for name in COMMANDS)


def test_importing_the_library_loads_no_product_code():
    code = ("import sys, hscc_core; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({PRODUCT_PACKAGES!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_library_source_imports_only_the_allowed_packages():
    stdlib = set(sys.stdlib_module_names)
    offenders = {}
    files = sorted((ROOT / "hscc_core").rglob("*.py"))
    assert len(files) >= 15
    for path in files:
        if path.name == "__main__.py":  # the `python -m hscc_core` alias loads the CLI at run time only
            continue
        roots = _imported_roots(path) - {"__future__", "hscc_core"}
        bad = {r for r in roots if r not in LIBRARY_DEPENDENCIES and (r not in stdlib or r == "argparse")}
        if bad:
            offenders[path.relative_to(ROOT).as_posix()] = sorted(bad)
    assert not offenders, f"hscc_core must stay a pure library; these files import {offenders}"


def test_models_import_nothing_from_the_repository():
    for path in sorted((ROOT / "models").glob("*.py")):
        assert not _imported_roots(path) & {"hscc_core", "hscc_mri", "preprocessing", "webapp"}, path.name


def test_the_public_api_is_re_exported_and_importable():
    import hscc_core
    import hscc_mri

    for package in (hscc_core, hscc_mri):
        missing = [name for name in package.__all__ if not hasattr(package, name)]
        assert not missing, f"{package.__name__}.__all__ names what it lacks: {missing}"
    assert {"compress", "CompressionConfig", "Method", "Allocation", "save", "load", "bench_pair", "distill",
            "fidelity", "count_flops", "HSCCError"} <= set(hscc_core.__all__)


def test_the_library_docstring_example_calls_only_what_exists():
    """The example at the top of ``hscc_core`` once called ``hscc_core.compression(...)``, which
    does not exist; every ``hscc_core.<name>`` it uses must be public API."""
    import re

    import hscc_core

    used = set(re.findall(r"hscc_core\.(\w+)", hscc_core.__doc__))
    assert {"compress", "CompressionConfig", "save", "load"} <= used
    assert used <= set(hscc_core.__all__), sorted(used - set(hscc_core.__all__))


#: Bare ValueErrors allowed: an argparse type whose ValueError it turns into its own message
#: at once (hscc_mri/cli/release.py, ``_artifact``).
BARE_VALUE_ERRORS = {"hscc_mri/cli/release.py": 1}


def test_library_and_product_raise_typed_errors_not_bare_value_errors():
    """hscc_core raises HSCCError kinds (ConfigError, CompressionError, ...), hscc_mri its
    ProductError kinds (SettingsError, DataError, ...): a new ``raise ValueError`` fails here."""
    found = {}
    for package in ("hscc_core", "hscc_mri"):
        for path in sorted((ROOT / package).rglob("*.py")):
            n = sum(1 for node in ast.walk(ast.parse(path.read_text(), str(path)))
                    if isinstance(node, ast.Raise) and node.exc is not None
                    and (getattr(node.exc, "id", None) == "ValueError"
                         or getattr(getattr(node.exc, "func", None), "id", None) == "ValueError"))
            if n:
                found[path.relative_to(ROOT).as_posix()] = n
    assert found == BARE_VALUE_ERRORS, f"raise a typed error (hscc_core.errors / hscc_mri.errors) instead: {found}"


def test_the_structure_report_measures_this_tree():
    """``scripts/structure.py`` (the before/after numbers of issue 25's closing note) sees
    what the contracts enforce: no cycle inside the product, no serving import of the lab,
    every product module placed, and the lines of each layer."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("structure", ROOT / "scripts" / "structure.py")
    structure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(structure)
    result = structure.measure(ROOT)
    assert result["product_cycles"] == [] and result["serving_imports_of_lab"] == []
    assert "unplaced" not in result["lines"]
    assert all(result["lines"][layer] > 0 for layer in ("app", "serving", "lab", "library"))
    assert structure._cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
