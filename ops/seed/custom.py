"""Custom seeds: any `seeds/<name>.py` (SEEDS_DIR) that defines `run(conn, report)`.

A team adds its own data without editing the package. The tool owns the transaction: the seed
gets a connection inside it (committed when `run` returns, rolled back on any exception) and a
Reporter for the ✅ lines.
Helpers seeds commonly need live in `ops.seed.helpers`.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.core.config import Settings
from ops.core.db import connection, first_line
from ops.core.errors import NotFound, OpsError
from ops.core.output import SILENT, Reporter, suggest
from ops.seed.builtin import prepare_seed_transaction, run_seeds, seed_lookups, seed_sample

BUILTIN_SEEDS: dict[str, Callable[..., Any]] = {"lookups": seed_lookups, "sample": seed_sample}
# Seed names become file names and module names: nothing that could escape the folder.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


@dataclass
class SeedInfo:
    name: str
    summary: str  # first docstring line, or what is wrong with the file
    builtin: bool
    path: str | None = None


@dataclass
class SeedRunResult:
    name: str
    builtin: bool
    path: str | None
    seconds: float
    committed: bool = True


def custom_seed_files(seeds_dir: Path) -> dict[str, Path]:
    """name -> file for every `*.py` in the folder (files starting with `_` are helpers)."""
    if not seeds_dir.is_dir():
        return {}
    return {path.stem: path for path in sorted(seeds_dir.glob("*.py"))
            if not path.name.startswith("_") and NAME_PATTERN.fullmatch(path.stem)}


def available_seeds(seeds_dir: Path) -> list[SeedInfo]:
    """Built-in seeds, then custom ones, each with the first line of its docstring.

    Custom docstrings are read with `ast`, so listing never executes a seed's code.
    """
    seeds = [SeedInfo(name, _first_doc_line(func.__doc__), True)
             for name, func in BUILTIN_SEEDS.items()]
    for name, path in custom_seed_files(seeds_dir).items():
        if name in BUILTIN_SEEDS:
            summary = f"⚠️  shadowed by the built-in `{name}` seed: rename the file"
        else:
            summary = _file_summary(path)
        seeds.append(SeedInfo(name, summary, False, str(path)))
    return seeds


def _file_summary(path: Path) -> str:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError, OSError) as exc:
        return f"⚠️  cannot be read: {exc.__class__.__name__}: {exc}"
    return _first_doc_line(ast.get_docstring(tree)) or "(no docstring)"


def _first_doc_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0] if (doc or "").strip() else ""


def load_seed(path: Path) -> Callable[..., Any]:
    """Import a seed file and return its `run`; one clear OpsError naming the file otherwise."""
    module_name = f"tasklets_seeds_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise OpsError(f"seed file {path} cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered while it executes (dataclasses and pickling look modules up by name), and
    # the seeds folder is importable so seeds can share `_helpers.py` files.
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise OpsError(
            f"seed file {path} failed to import: {exc.__class__.__name__}: {first_line(exc)}",
            hint=f"Fix the file; {suggest(f'seed run {path.stem}')} with --debug shows the "
            "traceback.",
        ) from exc
    finally:
        sys.path.remove(str(path.parent.resolve()))
        sys.modules.pop(module_name, None)
    run: object = getattr(module, "run", None)
    if not callable(run):
        raise OpsError(f"seed file {path} does not define run(conn, report)",
                       hint="Add `def run(conn, report):` — see seeds/example_support_rota.py.")
    try:
        inspect.signature(run).bind(None, None)
    except TypeError:
        raise OpsError(f"seed file {path}: run must accept two arguments (conn, report)",
                       hint="Declare it as `def run(conn, report):`.") from None
    except ValueError:  # builtins without a signature: let the call decide
        pass
    return run


def run_seed(settings: Settings, name: str, report: Reporter = SILENT) -> SeedRunResult:
    """Run a built-in or custom seed by name in one transaction the tool owns."""
    started = time.monotonic()
    if name in BUILTIN_SEEDS:
        run_seeds(settings, lookups=name == "lookups", sample=name == "sample", report=report)
        return SeedRunResult(name, True, None, round(time.monotonic() - started, 3))
    files = custom_seed_files(settings.seeds_dir)
    if name not in files:
        available = ", ".join([*BUILTIN_SEEDS, *(n for n in files if n not in BUILTIN_SEEDS)])
        raise NotFound(f"no seed named {name!r} (looked in {settings.seeds_dir}/)",
                       hint=f"Available seeds: {available}. {suggest('seed list')} describes "
                       "them.")
    path = files[name]
    run = load_seed(path)
    report.line(f"🌱 Running seed {name} ({path})...")
    with connection(settings) as conn:
        try:
            with conn.transaction():
                prepare_seed_transaction(conn)
                run(conn, report)
        except OpsError as exc:
            raise OpsError(f"seed {name} failed, everything it wrote was rolled back: "
                           f"{exc.message}", hint=exc.hint, exit_code=exc.exit_code) from exc
        except Exception as exc:
            raise OpsError(
                f"seed {name} failed, everything it wrote was rolled back: "
                f"{exc.__class__.__name__}: {first_line(exc)}",
                hint="Re-run with --debug for the traceback.",
            ) from exc
    seconds = round(time.monotonic() - started, 3)
    report.line(f"✅ Seed {name} committed ({seconds:.1f}s)")
    return SeedRunResult(name, False, str(path), seconds)
