"""The writer-independent half of `import beads`: the file parsed and mapped to WorkItems.

Both writers (`ops.beads.importer` straight into the database, `ops.beads.via_api` through the
REST API) start from a PreparedImport, so they write exactly the same items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ops.beads.mapping import MappingResult, map_issues
from ops.beads.parse import ParsedBeads, parse_file
from ops.core.defaults import DEFAULT_BEADS_FILE, DEFAULT_BEADS_PRODUCT
from ops.core.output import SILENT, Reporter
from ops.workitems.model import WorkItem

LABELS = {"epic": "Epics", "feature": "Features", "task": "Tasks"}


@dataclass
class ImportOptions:
    file: Path = Path(DEFAULT_BEADS_FILE)
    product: str = DEFAULT_BEADS_PRODUCT
    dry_run: bool = False
    skip_invalid: bool = False
    include_ephemeral: bool = False
    via: str = "db"  # "db" | "api"
    api_url: str = "http://localhost:8000"
    email: str = "ramesh@systech.com"


@dataclass
class Target:
    tenant_id: int
    product_id: int
    product: str


@dataclass
class PreparedImport:
    """The writer-independent half: what the file says, as WorkItems (parents first)."""

    parsed: ParsedBeads
    mapped: MappingResult

    @property
    def items(self) -> list[WorkItem]:
        return self.mapped.items


def prepare(options: ImportOptions, report: Reporter = SILENT) -> PreparedImport:
    """Parse and map the file (no database); OpsError for a bad file or a parent cycle."""
    parsed = parse_file(options.file, skip_invalid=options.skip_invalid,
                        include_ephemeral=options.include_ephemeral)
    skipped = []
    if parsed.header_lines or parsed.memory_lines:
        skipped.append(f"{parsed.header_lines} header, {parsed.memory_lines} memory line(s)")
    if parsed.ephemeral:
        skipped.append(f"{len(parsed.ephemeral)} ephemeral")
    if parsed.invalid:
        skipped.append(f"{len(parsed.invalid)} invalid line(s)")
    report.line(f"📄 Read {options.file}: {len(parsed.issues)} issue(s)"
                + (f" (skipped {', '.join(skipped)})" if skipped else ""))
    return PreparedImport(parsed, map_issues(parsed.issues))
