"""The documentation site: it builds strictly (no broken link, anchor or page left out), its
CLI reference lists every command and option `--help` shows, and every README link resolves."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ops.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
PROG = "tasklets-db"
HELP_OPTIONS = {"--help", "-h"}  # every command has them; the reference says so once
OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")
PANEL = re.compile(r"^╭─ (?P<title>.+?) ─")
COMMAND = typer.main.get_command(app)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stderr[-3000:]
    assert "WARNING" not in build.stderr, build.stderr[-3000:]
    return out


def test_site_builds_strictly_with_every_page(site: Path) -> None:
    pages = {path.relative_to(ROOT / "docs").with_suffix("") for path in
             (ROOT / "docs").rglob("*.md")}
    built = {path.relative_to(site).parent for path in site.rglob("index.html")}
    assert {page if page.name != "index" else page.parent for page in pages} <= built


def help_panels(args: list[str]) -> dict[str, list[str]]:
    """`--help` of a command as the user sees it, by panel (Options, Arguments, Commands)."""
    runner = CliRunner()
    # the Click command Typer builds, built once: what `tasklets-db ... --help` runs
    with runner.isolation(env={"COLUMNS": "240", "NO_COLOR": "1"}) as (stdout, *_):
        code = COMMAND.main(args=[*args, "--help"], prog_name=PROG, standalone_mode=False)
        output = stdout.getvalue().decode()
    assert code == 0, output
    panels: dict[str, list[str]] = {}
    rows: list[str] | None = None
    for line in output.splitlines():
        if match := PANEL.match(line):
            rows = panels.setdefault(match["title"], [])
        elif line.startswith("╰"):
            rows = None
        elif rows is not None:
            rows.append(line.strip("│").rstrip())  # indented: a wrapped line
    return panels


def help_tree(path: tuple[str, ...] = ()) -> dict[tuple[str, ...], set[str]]:
    """Every command `--help` lists, recursively, with the options and arguments it shows."""
    panels = help_panels(list(path))
    names: set[str] = set()
    for title, rows in panels.items():
        if title == "Commands":
            continue
        for row in rows:
            names.update(OPTION.findall(row))
            if title == "Arguments" and (argument := re.match(r"^ [* ]\s{0,4}([a-z_]+)\s", row)):
                names.add(argument[1])
    tree = {path: names - HELP_OPTIONS}
    for row in panels.get("Commands", []):
        if match := re.match(r"^ ([a-z][\w-]*)\s", row):
            tree.update(help_tree((*path, match[1])))
    return tree


def reference_sections(site: Path) -> dict[tuple[str, ...], str]:
    """The CLI reference page as built: each command's section as plain text."""
    page = (site / "reference" / "cli" / "index.html").read_text()
    parts = re.split(r'<h[23] id="(tasklets-db[\w-]*)">', page)
    sections = {}
    for anchor, body in zip(parts[1::2], parts[2::2], strict=True):
        text = html.unescape(re.sub(r"<[^>]+>", " ", body.split('<h2 id="')[0]))
        sections[anchor] = " ".join(text.split())
    return sections


def test_cli_reference_lists_every_command_and_option_help_shows(site: Path) -> None:
    tree = help_tree()
    sections = reference_sections(site)
    assert len(tree) > 30 and sum(map(len, tree.values())) > 150  # the parsing found them
    expected = {"-".join((PROG, *path)) for path in tree}
    assert set(sections) == expected, "commands in the reference differ from --help"
    missing = {anchor: sorted(name for name in names
                              if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])",
                                               sections[anchor]))
               for path, names in tree.items() if (anchor := "-".join((PROG, *path)))}
    assert not {anchor: names for anchor, names in missing.items() if names}


def github_anchors(markdown: str) -> set[str]:
    """The ids GitHub gives a Markdown file's headings (outside code blocks)."""
    anchors: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"^#{1,6} (.+)$", line)):
            slug = re.sub(r"[^\w\- ]", "", heading[1].replace("`", "").strip().lower())
            slug = slug.replace(" ", "-")
            anchor, count = slug, 0
            while anchor in anchors:
                count += 1
                anchor = f"{slug}-{count}"
            anchors.add(anchor)
    return anchors


def test_the_readme_fits_a_newcomer() -> None:
    """What it is, the two commands, the main targets, where the docs are; the rest is in docs/."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    top = "\n".join(readme.splitlines()[:20])
    assert "make db-fresh" in top and "make test" in top and "](docs/index.md)" in top


def test_every_readme_link_resolves() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert len(links) >= 10
    broken = []
    for link in links:
        if re.match(r"^https?://[\w.-]+", link):
            continue
        target, _, anchor = link.partition("#")
        path = (ROOT / target).resolve() if target else ROOT / "README.md"
        found = path.is_relative_to(ROOT) and path.exists()
        if not found or anchor and (path.suffix != ".md"
                                    or anchor not in github_anchors(path.read_text())):
            broken.append(link)
    assert not broken


def test_settings_reference_lists_every_setting_the_config_reads(site: Path) -> None:
    from ops.core.config import KEEP_RULES

    source = (ROOT / "ops" / "core" / "config.py").read_text()
    read = set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"', source))
    read |= {f"BACKUP_KEEP_{rule.upper()}" for rule in KEEP_RULES}
    assert {"DATABASE_URL", "BACKUP_DIR", "ANONYMIZE_SALT"} <= read
    page = html.unescape((site / "reference" / "settings" / "index.html").read_text())
    generated = page.split('id="every-setting-in-envexample"')[1]
    assert not {name for name in read if f"<code>{name}</code>" not in generated}
