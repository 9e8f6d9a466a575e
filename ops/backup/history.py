"""`backups --chart`: the full backups' size and duration over time, as an SVG file.

Only full backups are charted: a tenant's, a --tables one, an anonymized snapshot or a
pre-restore safety backup is another kind of thing, and would make a jump in the line that
means nothing. The kind is the archive's (meta, or the sidecar of an encrypted backup); a
backup whose kind or completeness cannot be told (an old encrypted one, a cut-short file) is
left out and counted. Durations come from meta, so an encrypted backup is charted by size.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ops.backup.archive import FULL, Archive
from ops.core.charts import Panel, Point, time_chart
from ops.core.errors import NotFound, OpsError
from ops.core.output import human_size, suggest


@dataclass(frozen=True)
class FullBackup:
    name: str
    taken: datetime
    size_bytes: int
    duration_seconds: float | None  # None: written before backups recorded it


@dataclass
class ChartResult:
    chart: str  # the file written
    location: str  # the store charted
    charted: int  # full backups drawn
    left_out: int  # backups whose kind is unknown (encrypted, or no meta)


def full_backups(archive: Archive) -> tuple[list[FullBackup], int]:
    """The archive's full backups, oldest first, and how many backups were left out because
    their kind or completeness is unknown. The one place `backups --chart` lists the store."""
    found, unknown = [], 0
    listing = archive.listing()
    for backup in listing.backups:
        if backup.safety:
            continue
        facts = archive.facts(backup, listing)
        if not facts.usable:
            unknown += 1
        elif facts.kind == FULL:
            duration = (facts.meta or {}).get("durationSeconds")
            found.append(FullBackup(backup.name, backup.timestamp, backup.size,
                                    float(duration) if isinstance(duration, int | float)
                                    else None))
    return found[::-1], unknown


def chart_backups(archive: Archive, path: str | os.PathLike[str]) -> ChartResult:
    """Write the SVG chart of the full backups' size and duration to `path` (replacing it
    whole: a reader never sees half a file)."""
    store = archive.store
    backups, unknown = full_backups(archive)
    if not backups:
        raise NotFound(f"no full backups in {store} to chart"
                       + (f" ({unknown} of unknown kind or completeness)" if unknown else ""),
                       hint=f"Take one with {suggest('backup')}.")
    timed = [Point(b.taken, b.duration_seconds, b.name) for b in backups
             if b.duration_seconds is not None]
    svg = time_chart(
        "Full backups: size and duration", [
            Panel("Size", [Point(b.taken, b.size_bytes, b.name) for b in backups],
                  lambda v: human_size(int(v)),
                  unit=_size_unit(max(b.size_bytes for b in backups))),
            Panel("Duration" if timed else "Duration (not recorded by these backups)",
                  timed, _seconds)],
        subtitle=f"{len(backups)} full backups in {store}, "
                 f"{backups[0].taken:%Y-%m-%d %H:%M} to {backups[-1].taken:%Y-%m-%d %H:%M} UTC")
    _write_whole(Path(path), svg)
    return ChartResult(str(path), str(store), len(backups), unknown)


def _size_unit(largest: int) -> float:
    """The binary unit human_size writes `largest` in (KB, MB, GB), for round grid lines."""
    unit = 1.0
    while largest >= unit * 1024 and unit < 1024 ** 3:
        unit *= 1024
    return unit


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _write_whole(target: Path, text: str) -> None:
    """Write `text` to a temp file beside `target`, then rename it over `target`."""
    temp: Path | None = None
    try:
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                        suffix=".tmp")
        temp = Path(name)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        temp.chmod(0o644)  # a chart is for showing: readable like any file written here
        os.replace(temp, target)
    except OSError as exc:
        if temp is not None:
            temp.unlink(missing_ok=True)
        raise OpsError(f"cannot write the chart {target}: {exc.strerror or exc}",
                       hint="Name a file in a directory that exists and you may write to.") \
            from None
