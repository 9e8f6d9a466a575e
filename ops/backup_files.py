"""Backup file naming, listing and picking "latest": the one place that knows the names.

Finished backups are `backup-YYYY-MM-DDTHH-mm-ss-SSSZ.json[.gz]` (UTC, milliseconds, as the
seed tool names them). Work in progress is written to a hidden `.partial` temp file beside the
target and renamed at the end, so nothing here can mistake it for a backup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BACKUP_PREFIX = "backup-"
SAFETY_PREFIX = "pre-restore-"
_NAME = re.compile(
    r"^(?P<prefix>backup-|pre-restore-)"
    r"(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)\.json(?P<gz>\.gz)?$"
)
_TS_FORMAT = "%Y-%m-%dT%H-%M-%S"


@dataclass(frozen=True)
class BackupFile:
    path: Path
    timestamp: datetime
    size: int
    compressed: bool
    safety: bool  # a pre-restore safety backup rather than a user backup

    @property
    def name(self) -> str:
        return self.path.name


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_timestamp(moment: datetime) -> str:
    """2024-01-08T14:30:45.123Z, as the seed writes `timestamp`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def backup_filename(moment: datetime, *, compressed: bool = False,
                    prefix: str = BACKUP_PREFIX) -> str:
    moment = moment.astimezone(UTC)
    stamp = moment.strftime(_TS_FORMAT) + f"-{moment.microsecond // 1000:03d}Z"
    return f"{prefix}{stamp}.json{'.gz' if compressed else ''}"


def parse_backup_name(name: str) -> tuple[datetime, bool, bool] | None:
    """(timestamp, compressed, safety) for a backup file name, None for anything else."""
    match = _NAME.match(name)
    if not match:
        return None
    ts = match["ts"]
    moment = datetime.strptime(ts[:19], _TS_FORMAT).replace(
        tzinfo=UTC, microsecond=int(ts[20:23]) * 1000
    )
    return moment, bool(match["gz"]), match["prefix"] == SAFETY_PREFIX


def list_backups(backup_dir: Path, *, include_safety: bool = True) -> list[BackupFile]:
    """Backup files in backup_dir, newest first; other files are ignored."""
    if not backup_dir.is_dir():
        return []
    found: list[BackupFile] = []
    for path in backup_dir.iterdir():
        parsed = parse_backup_name(path.name)
        if parsed is None or not path.is_file():
            continue
        moment, compressed, safety = parsed
        if safety and not include_safety:
            continue
        found.append(BackupFile(path, moment, path.stat().st_size, compressed, safety))
    found.sort(key=lambda b: (b.timestamp, b.name), reverse=True)
    return found


def partial_path(target: Path) -> Path:
    """The hidden temp file a backup is written to before it is renamed into place."""
    return target.with_name(f".{target.name}.partial")
