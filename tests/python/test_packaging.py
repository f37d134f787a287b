"""The package declares every distribution it imports (pyproject.toml [project]
dependencies), so `pip install .` alone gives a working package."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from conftest import PROJECT_DIR

PACKAGE = PROJECT_DIR / "src" / "retail_xsell"


def _imported_top_level_modules() -> dict[str, set[str]]:
    """Top-level module -> the package files that import it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.name)
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_declared():
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]
    declared = {_canonical(re.split(r"[\s<>=!~;\[]", dep)[0]) for dep in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, files in sorted(_imported_top_level_modules().items()):
        if module in sys.stdlib_module_names or module in ("retail_xsell", "__future__"):
            continue
        providers = {_canonical(name) for name in distributions.get(module, [])}
        assert providers, f"{module} (imported by {sorted(files)}) is not installed"
        if not providers & declared:
            undeclared[module] = sorted(providers)
    assert undeclared == {}, f"imported but not in pyproject.toml dependencies: {undeclared}"
