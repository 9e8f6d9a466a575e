"""The documentation site's reference pages, generated from what they describe so they cannot
drift: every command and option from the Click command Typer builds (what `--help` shows), and
every setting from .env.example (the file users copy to .env), every make target from the
Makefile (what `make help` lists). docs/hooks/reference.py puts them in the pages at `mkdocs
build` time.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

PROG = "tasklets-db"
# Characters Markdown would read as markup in help text copied into a page or a table cell.
_MARKUP = re.compile(r"([\\*_\[\]|<>])")


def cli_reference() -> str:
    """Markdown for every visible command of the CLI: usage, help, arguments and options."""
    from ops.cli.main import app  # the commands register themselves on import

    root = typer.main.get_command(app)
    return "\n".join(_command_section(path, command) for path, command in walk(root))


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Each visible command with its path below the root, the root first, groups before their
    subcommands, in the order `--help` lists them."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from walk(sub, (*path, name))


def command_title(path: tuple[str, ...]) -> str:
    return f"`{' '.join((PROG, *path))}`"


def _command_section(path: tuple[str, ...], command: Any) -> str:
    level = "#" * (2 + max(0, len(path) - 1))
    context = typer.Context(command, info_name=PROG)
    usage = " ".join((PROG, *path, *command.collect_usage_pieces(context)))
    lines = [f"{level} {command_title(path)}", "", "```text", usage, "```", ""]
    if command.help:
        lines += [_escape(inspect.cleandoc(command.help)), ""]
    for kind in ("argument", "option"):
        records = [param.get_help_record(context) for param in command.params
                   if param.param_type_name == kind and not getattr(param, "hidden", False)]
        if records := [record for record in records if record]:
            lines += [f"| {kind.title()} | Description |", "|---|---|"]
            lines += [f"| `{names}` | {_escape(' '.join(text.split()))} |"
                      for names, text in records]
            lines.append("")
    subcommands = [(name, sub) for name, sub in getattr(command, "commands", {}).items()
                   if not sub.hidden]
    if subcommands:
        lines += ["| Command | Description |", "|---|---|"]
        lines += [f"| [{command_title((*path, name))}](#{_anchor((*path, name))}) | "
                  f"{_escape(sub.get_short_help_str(limit=200))} |" for name, sub in subcommands]
        lines.append("")
    return "\n".join(lines)


def _anchor(path: tuple[str, ...]) -> str:
    """The id Python-Markdown's toc gives a command's heading."""
    return "-".join((PROG, *path))


def _escape(text: str) -> str:
    # backticks are kept: help text quotes commands and values in them, as Markdown code
    out = []
    for index, piece in enumerate(text.split("`")):
        out.append(piece if index % 2 else _MARKUP.sub(r"\\\1", piece))
    return "`".join(out)


# --- settings --------------------------------------------------------------------------------

_SECTION = re.compile(r"^# --- (.+?) -*$")
_SETTING = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def settings_reference(env_example: Path) -> str:
    """Markdown for every setting in .env.example, by section: name, its value there (the
    development default), and the comment above it, which applies to the settings that follow
    it directly."""
    lines: list[str] = []
    comment: list[str] = []
    rows: list[str] = []
    shared: list[str] = []  # the comment of the settings being collected

    def flush_rows() -> None:
        if rows:
            lines.extend(["| Setting | In .env.example | Meaning |", "|---|---|---|", *rows, ""])
            rows.clear()

    for raw in env_example.read_text().splitlines():
        line = raw.rstrip()
        section = _SECTION.match(line)
        setting = _SETTING.match(line)
        if section:
            flush_rows()
            lines.extend([f"### {section.group(1)}", ""])
            comment = []
        elif setting:
            if comment:
                shared, comment = comment, []
            commented, name, value = setting.groups()
            shown = f"`{value}`" if value else ""
            if commented:
                shown = f"unset{f' (e.g. {shown})' if shown else ''}"
            rows.append(f"| `{name}` | {shown} | {_escape(' '.join(shared))} |")
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        else:
            if comment and not rows:  # a comment on its own: the section's introduction
                lines.extend([_escape(" ".join(comment)), ""])
            comment, shared = [], []
            flush_rows()
    flush_rows()
    return "\n".join(lines)


# --- make targets ----------------------------------------------------------------------------

_TARGET = re.compile(r"^([a-zA-Z_-]+):.*?## (.+)$")


def make_reference(makefile: Path) -> str:
    """Markdown for every target `make help` lists: its name and its one line."""
    rows = [f"| `make {match[1]}` | {_escape(match[2])} |"
            for line in makefile.read_text().splitlines() if (match := _TARGET.match(line))]
    return "\n".join(["| Target | What it does |", "|---|---|", *rows, ""])
