"""What Typer would load at start-up that this CLI never uses, left unloaded.

Help: typer.rich_utils (imported by Typer for every `--help` and usage error) imports
rich.markdown (markdown_it) and rich.traceback (rich.pretty, rich.syntax) at module level:
~90 ms of every `--help`. This CLI renders help in "rich" markup mode, which never builds a
Markdown, and it turns Typer's pretty tracebacks off, so neither is needed. `install()` makes
Python import typer.rich_utils against stand-ins for those two classes that load the real class
on first use: the help output is the same, byte for byte; only its start-up is shorter.

Options: Typer (0.2x) coerces option values through pydantic TypeAdapters, built when an
option is first processed; the global --env-file is processed by every command (`reset
--help` included), so every command would import pydantic and build a schema, ~0.1-0.2 s.
`install()` has Typer build them only for a value that needs one: a missing value (None)
needs none, nor does a str for a str option (Typer's adapter returns it as it is).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

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
        real: type = getattr(importlib.import_module(cls._module), cls._name)
        return real

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
        module: ModuleType | None = self.real.create_module(spec)
        return module

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
            # a loader by duck typing: importlib.abc.Loader would cost its own import
            spec.loader = cast("Loader", _StandInLoader(spec.loader))
        return spec


_FINDER = _Finder()


def _defer_option_coercion() -> None:
    """Typer's coercion of each option value, built only for a value that needs it."""
    try:  # Typer's internals: another version without them keeps its own (slower) way
        from typer import core as typer_core
        from typer._coercion import (  # noqa: PLC2701 - deliberate, with the fallback above
            RuntimeParam,
            TypeDescriptor,
        )
    except ImportError:
        return
    found: Callable[[TypeDescriptor], RuntimeParam] | None = getattr(
        typer_core, "build_runtime_param", None)
    if found is None or getattr(found, "deferred", False):
        return
    build = found

    @dataclass(frozen=True)
    class DeferredParam(RuntimeParam):
        descriptor: TypeDescriptor
        plain_str: bool  # a str option without a parser: Typer's adapter returns a str as is

        @cached_property
        def real(self) -> RuntimeParam:
            return build(self.descriptor)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            # (RuntimeParam.coerce answers a None itself, without calling this)
            if self.plain_str and type(value) is str:
                return value
            return self.real._coerce_value(value, param=param, ctx=ctx)

    def deferred(descriptor: TypeDescriptor) -> RuntimeParam:
        info = descriptor.parameter_info
        plain_str = descriptor.annotation is str and descriptor.file_annotation is None \
            and info.parser is None
        return DeferredParam(parameter_info=info, annotation=descriptor.annotation,
                             descriptor=descriptor, plain_str=plain_str)

    # a marker attribute on the function object, read by the start-up code:
    deferred.deferred = True  # type: ignore[attr-defined]
    # typer.core imports the name from typer._coercion without re-exporting it
    typer_core.build_runtime_param = deferred  # type: ignore[attr-defined]


def install() -> None:
    """Import typer.rich_utils, when Typer first needs it, without markdown and tracebacks;
    build Typer's pydantic coercion of an option only for a value that needs it."""
    if TARGET not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    _defer_option_coercion()
