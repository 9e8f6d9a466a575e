"""The layout is the architecture: steps in packages over a small core, and the dependency rule
between them (pyproject.toml's import-linter contract) holds."""

from __future__ import annotations

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
