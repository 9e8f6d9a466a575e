"""What Typer would load at start-up that this CLI never uses, left unloaded.

Help: typer.rich_utils (imported by Typer for every `--help` and usage error) imports
rich.markdown (markdown_it) and rich.traceback (rich.pretty, rich.syntax) at module level:
~90 ms of every `--help`. This CLI renders help in "rich" markup mode, which never builds a
Markdown, and it turns Typer's pretty tracebacks off, so neither is needed. `install()` makes
Python import typer.rich_utils against stand-ins for those two classes that load the real class
on first use: the help output is the same, byte for byte; only its start-up is shorter.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import Any

TARGET = "typer.rich_utils"
# module -> the class typer.rich_utils imports from it
DEFERRED = {"rich.markdown": "Markdown", "rich.traceback": "Traceback"}


class _Deferred(type):
    """Metaclass of a stand-in: calling it or reading an attribute (Traceback.from_exception)
    imports the real class and hands over to it. A class, not a function, because
    typer.rich_utils writes `Markdown | Text` in annotations evaluated at import."""

    _module: str
    _name: str

    def _real(cls) -> type:
        return getattr(importlib.import_module(cls._module), cls._name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real()(*args, **kwargs)

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):  # not for protocol look-ups (pickling, copy, ...)
            raise AttributeError(name)
        return getattr(cls._real(), name)


def _stand_in(module: str, name: str) -> ModuleType:
    mod = ModuleType(module, f"Stand-in for {module} while {TARGET} is imported.")
    setattr(mod, name, _Deferred(name, (), {"_module": module, "_name": name}))
    return mod


# Plain classes, not importlib.abc's: that module imports importlib.resources (~5 ms).
class _StandInLoader:
    """Runs the real loader with the stand-ins in sys.modules, then takes them out again, so
    any later `import rich.markdown` loads the real module."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, ... of the real one
        return getattr(self.real, name)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        added = [name for name in DEFERRED if name not in sys.modules]
        sys.modules.update({name: _stand_in(name, DEFERRED[name]) for name in added})
        try:
            self.real.exec_module(module)
        except ImportError:  # a Typer that imports more from them: load the real modules
            for name in added:
                sys.modules.pop(name, None)
            added = []
            self.real.exec_module(module)
        finally:
            for name in added:
                sys.modules.pop(name, None)


class _Finder:
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != TARGET:
            return None
        spec = PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _StandInLoader(spec.loader)
        return spec


_FINDER = _Finder()


def install() -> None:
    """Import typer.rich_utils, when Typer first needs it, without markdown and tracebacks."""
    if TARGET not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
