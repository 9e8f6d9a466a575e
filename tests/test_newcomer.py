"""A newcomer's first hour, README in hand: the paper cuts of that walk-through, each as the
check that would have caught it (settings file, docs, hints, messages)."""

from __future__ import annotations

import re
from pathlib import Path

from ops.core.config import PROJECT_ROOT
from ops.core.defaults import DEFAULT_COMPRESSION


def _docs() -> dict[Path, str]:
    """The README and any docs pages, which a newcomer reads as one."""
    pages = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").rglob("*.md"))]
    return {page: page.read_text() for page in pages if page.is_file()}


def test_docs_hold_no_placeholder_where_figures_belong():
    for page, text in _docs().items():
        found = re.findall(r"\b[A-Z]+(?:_[A-Z]+)*_(?:FIGURES|TODO|TBD|PLACEHOLDER)\b", text)
        assert not found, f"{page.name} still holds {found}"


def test_env_example_names_the_file_backup_compress_writes():
    lines = (PROJECT_ROOT / ".env.example").read_text().splitlines()
    at = lines.index("BACKUP_COMPRESS=")
    comment = " ".join(line for line in lines[at - 3:at] if line.startswith("#"))
    suffixes = {"zstd": ".json.zst", "gzip": ".json.gz"}
    # "1" picks the default compression: the comment names its file first.
    named = sorted((comment.find(s), name) for name, s in suffixes.items() if s in comment)
    assert named and named[0][1] == DEFAULT_COMPRESSION, comment
