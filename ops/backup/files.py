"""Backup file naming, listing and picking "latest": the one place that knows the names.

Finished backups are `backup-YYYY-MM-DDTHH-mm-ss-SSSZ.json[.gz]` (UTC, milliseconds, as the
seed tool names them). Work in progress is written to a hidden `.partial` temp file beside the
target and renamed at the end, so nothing here can mistake it for a backup.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ops.backup.format import is_gzip, open_backup, read_meta
from ops.core.errors import OpsError

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


def next_backup_name(target: Path) -> Path:
    """The name a millisecond later, for a default-named backup whose name was just taken."""
    parsed = parse_backup_name(target.name)
    if parsed is None:
        raise ValueError(f"not a backup name: {target.name}")
    moment, compressed, safety = parsed
    return target.with_name(backup_filename(
        moment + timedelta(milliseconds=1), compressed=compressed,
        prefix=SAFETY_PREFIX if safety else BACKUP_PREFIX))


def inside(path: Path, directory: Path) -> bool:
    """Whether `path`, with every symlink followed, is within `directory`."""
    return path.resolve().is_relative_to(directory.resolve())


def list_backups(backup_dir: Path, *, include_safety: bool = True) -> list[BackupFile]:
    """Backup files in backup_dir, newest first; other files are ignored, and so are links
    that lead outside backup_dir (a backup is what the directory holds)."""
    if not backup_dir.is_dir():
        return []
    found: list[BackupFile] = []
    for path in backup_dir.iterdir():
        parsed = parse_backup_name(path.name)
        if parsed is None or not path.is_file():
            continue
        if path.is_symlink() and not inside(path, backup_dir):
            continue
        moment, compressed, safety = parsed
        if safety and not include_safety:
            continue
        found.append(BackupFile(path, moment, path.stat().st_size, compressed, safety))
    found.sort(key=lambda b: (b.timestamp, b.name), reverse=True)
    return found


PRIVATE_FILE = 0o600  # backups hold emails and password hashes: the owner only
PRIVATE_DIR = 0o700


def private_temp(target: Path) -> tuple[Path, int]:
    """A new hidden temp file beside `target` (unique, exclusive, 0600): (path, open fd)."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                suffix=".partial")
    return Path(name), fd


def create_private(path: Path) -> int:
    """Create `path` exclusively with owner-only permissions; returns the open fd."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                   PRIVATE_FILE)


def looks_complete(path: Path) -> bool:
    """Cheap check that a backup file was finished, for `backups` and `restore latest`.

    Our files: the meta line is present at the end (an interrupted or truncated backup never
    has it). Files without meta (the seed tool's): they end like a JSON object. Middle
    corruption is found only by `verify`, which streams the whole file.
    """
    if read_meta(path) is not None:
        return True
    try:
        return _ends_like_json_object(path)
    except (OSError, EOFError, ValueError):  # gzip errors are OSError/EOFError subclasses
        return False


_MAX_INFLATION = 100  # JSON gzips 5-20x; far more is a decompression bomb, not a backup


def _ends_like_json_object(path: Path) -> bool:
    if is_gzip(path):  # no random access: stream to the end (only foreign .gz files get here)
        budget = _MAX_INFLATION * path.stat().st_size + (1 << 20)
        last = b""
        with open_backup(path) as fh:
            while block := fh.read(1 << 20):
                last = block.rstrip() or last
                budget -= len(block)
                if budget < 0:
                    return False
        return last.endswith(b"}")
    with path.open("rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - 4096))
        return fh.read().rstrip().endswith(b"}")


def latest_complete_backup(backup_dir: Path, *, include_safety: bool = False) -> BackupFile | None:
    """The newest backup that `looks_complete` (what `restore latest` restores)."""
    for candidate in list_backups(backup_dir, include_safety=include_safety):
        if looks_complete(candidate.path):
            return candidate
    return None


def ensure_backup_dir(directory: Path) -> Path:
    """The directory backups are written to, created when only its last level is missing."""
    if directory.is_dir():
        return directory
    if directory.exists():
        raise OpsError(f"backup directory {directory} is not a directory",
                       hint="Point BACKUP_DIR (or --output) at a directory.")
    if not directory.parent.is_dir():
        raise OpsError(f"backup directory {directory} does not exist (nor its parent "
                       f"{directory.parent})",
                       hint="Create it, or set BACKUP_DIR to an existing directory.")
    try:
        directory.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:  # created concurrently
        pass
    except OSError as exc:
        raise OpsError(f"cannot create backup directory {directory}: {exc.strerror}",
                       hint="Check the permissions of its parent, or set BACKUP_DIR.") from None
    return directory


def leftover_partials(backup_dir: Path) -> list[Path]:
    """Temp files of backups still running or killed mid-way (nothing ever reads them)."""
    if not backup_dir.is_dir():
        return []
    return sorted(p for p in backup_dir.glob(".*.partial") if p.is_file())
