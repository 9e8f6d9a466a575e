"""mkdocs hook: the reference pages' generated parts, made at build time from the CLI and
.env.example (ops/cli/reference.py), so the site cannot drift from what it documents."""

from pathlib import Path

from ops.cli.reference import cli_reference, settings_reference

ROOT = Path(__file__).resolve().parents[2]
MARKERS = {
    "<!-- generated: cli-reference -->": cli_reference,
    "<!-- generated: settings-reference -->": lambda: settings_reference(ROOT / ".env.example"),
}


def on_page_markdown(markdown: str, **_: object) -> str:
    for marker, generate in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
