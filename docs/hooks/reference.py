"""mkdocs hook: the reference pages' generated parts, made at build time from the CLI,
.env.example and the Makefile (ops/cli/reference.py), so the site cannot drift from them."""

from pathlib import Path

from ops.cli.reference import cli_reference, make_reference, settings_reference

ROOT = Path(__file__).resolve().parents[2]
MARKERS = {
    "<!-- generated: cli-reference -->": cli_reference,
    "<!-- generated: settings-reference -->": lambda: settings_reference(ROOT / ".env.example"),
    "<!-- generated: make-targets -->": lambda: make_reference(ROOT / "Makefile"),
}


def on_page_markdown(markdown: str, **_: object) -> str:
    for marker, generate in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
