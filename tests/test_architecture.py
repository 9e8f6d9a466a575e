"""The layout is the architecture: steps in packages over a small core, and the dependency rule
between them (pyproject.toml's import-linter contract) holds."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from ops.core.config import PROJECT_ROOT


def test_the_dependency_rule_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_ops_holds_only_packages_and_its_entry_points():
    top = {p.name for p in (PROJECT_ROOT / "ops").glob("*.py")}
    assert top == {"__init__.py", "__main__.py"}
    for package in (PROJECT_ROOT / "ops").iterdir():
        if package.is_dir() and (package / "__init__.py").exists():
            assert (package / "__init__.py").read_text() == "", package.name  # kept empty


def _imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every `from MODULE import NAME` in the file, relative imports
    resolved."""
    package = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found += [(node.lineno, module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, "") for alias in node.names]
    return found


def test_no_module_imports_another_modules_underscore_name():
    """A name that starts with `_` is its module's own: whoever needs it gets a public one
    (`make lint` checks the same with ruff's PLC2701, third-party modules included)."""
    offences = []
    for path in sorted((PROJECT_ROOT / "ops").rglob("*.py")) + sorted(
            (PROJECT_ROOT / "api").rglob("*.py")):
        for line, module, name in _imports(path):
            private = [part for part in [*module.split("."), name]
                       if part.startswith("_") and not part.startswith("__")]
            if module.startswith(("ops", "api")) and private:
                offences.append(f"{path.relative_to(PROJECT_ROOT)}:{line}: {module} {name}")
    assert offences == []


def test_tests_take_helpers_from_support_never_from_conftest():
    offences = [f"{path.name}:{line}" for path in sorted((PROJECT_ROOT / "tests").rglob("*.py"))
                for line, module, _ in _imports(path) if module.split(".")[0] == "conftest"]
    assert offences == []


def test_the_type_checker_passes_strict_on_its_configured_paths():
    """mypy, configured in pyproject.toml (strict on the paths in [tool.mypy] files), as `make lint`
    runs it: CI runs this suite, not `make lint`."""
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir",
                           str(PROJECT_ROOT / ".mypy_cache")], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]


def test_every_type_ignore_says_why():
    """A silenced type error carries its reason: on its line or in the comment just above."""
    offences = []
    for path in sorted((PROJECT_ROOT / "ops").rglob("*.py")) + sorted(
            (PROJECT_ROOT / "api").rglob("*.py")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines, 1):
            if "type: ignore" not in line:
                continue
            after = line.split("type: ignore", 1)[1]
            reason_here = "#" in after
            reason_above = number > 1 and lines[number - 2].strip().startswith("#")
            if not (reason_here or reason_above):
                offences.append(f"{path.relative_to(PROJECT_ROOT)}:{number}")
    assert offences == []
