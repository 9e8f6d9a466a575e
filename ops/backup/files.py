"""Backup naming and what one backup's own bytes tell: the one place that knows the names, in any
store (ops.backup.archive lists them and picks among them).

Finished backups are `backup-YYYY-MM-DDTHH-mm-ss-SSSZ.json[.zst|.gz][.age]` (UTC, milliseconds,
as the seed tool names them; `.zst`/`.gz` compressed, `.age` encrypted, compression first);
pre-restore safety backups are `pre-restore-...` alike. They live in a store
(ops.backup.storage: a local directory or a bucket prefix), where an object appears only once
it is complete, so nothing here can mistake work in progress for a backup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from ops.backup.compression import READ_ERRORS, SUFFIXES, decompressing, detect, from_name
from ops.backup.format import meta_in_tail
from ops.backup.storage.factory import open_object
from ops.backup.storage.interface import Store
from ops.core.errors import OpsError

SIDECAR_SUFFIX = ".sum"  # what ops.backup.integrity publishes beside each backup

BACKUP_PREFIX = "backup-"
SAFETY_PREFIX = "pre-restore-"
_NAME = re.compile(
    r"^(?P<prefix>backup-|pre-restore-)"
    r"(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z)\.json(?:\.zst|\.gz)?(?P<age>\.age)?$"
)
_TS_FORMAT = "%Y-%m-%dT%H-%M-%S"
@dataclass(frozen=True)
class BackupRef:
    """One backup: the store it lives in and its name there."""

    store: Store
    name: str

    def __str__(self) -> str:
        return self.store.describe(self.name)


    @property
    def path(self) -> Path | None:
        """The file, for a backup in a local directory (None elsewhere)."""
        return self.store.local_path(self.name)

    def open(self) -> BinaryIO:
        return self.store.open_reader(self.name)

    def exists(self) -> bool:
        return self.store.exists(self.name)

    def delete(self) -> None:
        """Delete the backup and its sidecar (a sidecar alone would be litter)."""
        self.store.delete(self.name)
        self.store.delete(self.name + SIDECAR_SUFFIX)


Source = BackupRef | Path  # a backup to read: in a store, or a local file


def as_ref(source: Source) -> BackupRef:
    """The backup a local file is (its directory as the store), or `source` itself."""
    if isinstance(source, BackupRef):
        return source
    store, name = open_object(source)
    return BackupRef(store, name)


@dataclass(frozen=True)
class BackupFile:
    ref: BackupRef
    timestamp: datetime
    size: int
    compressed: bool
    encrypted: bool
    safety: bool  # a pre-restore safety backup rather than a user backup

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def path(self) -> Path | None:
        return self.ref.path


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_timestamp(moment: datetime) -> str:
    """2024-01-08T14:30:45.123Z, as the seed writes `timestamp`."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def backup_filename(moment: datetime, *, compression: str | None = None,
                    encrypted: bool = False, prefix: str = BACKUP_PREFIX) -> str:
    moment = moment.astimezone(UTC)
    stamp = moment.strftime(_TS_FORMAT) + f"-{moment.microsecond // 1000:03d}Z"
    packed = SUFFIXES[compression] if compression else ""
    return f"{prefix}{stamp}.json{packed}{'.age' if encrypted else ''}"


def parse_backup_name(name: str) -> tuple[datetime, str | None, bool] | None:
    """(timestamp, compression, safety) for a backup file name, None for anything else."""
    match = _NAME.match(name)
    if not match:
        return None
    ts = match["ts"]
    moment = datetime.strptime(ts[:19], _TS_FORMAT).replace(
        tzinfo=UTC, microsecond=int(ts[20:23]) * 1000
    )
    return moment, from_name(name), match["prefix"] == SAFETY_PREFIX


def is_encrypted_name(name: str) -> bool:
    return name.endswith(".age")


def next_backup_name(name: str) -> str:
    """The name a millisecond later, for a default-named backup whose name was just taken."""
    parsed = parse_backup_name(name)
    if parsed is None:
        raise ValueError(f"not a backup name: {name}")
    moment, compression, safety = parsed
    return backup_filename(moment + timedelta(milliseconds=1), compression=compression,
                           encrypted=is_encrypted_name(name),
                           prefix=SAFETY_PREFIX if safety else BACKUP_PREFIX)


# --- what a backup's tail says ------------------------------------------------------------

_TAIL_WINDOWS = (64 * 1024, 4 * 1024 * 1024)


def read_meta(source: Source, *, size: int | None = None) -> dict[str, Any] | None:
    """The meta object of a backup we wrote, read from the end (one or two range reads);
    None when absent.

    None means: not our layout (e.g. the seed tool's file), cut short (an interrupted or
    truncated backup never has its meta line), or encrypted (meta is inside the ciphertext).
    Corruption in the middle is `verify`'s job.
    """
    ref = as_ref(source)
    if is_encrypted_name(ref.name):
        return None
    try:
        for window in _TAIL_WINDOWS:
            tail = ref.store.read_tail(ref.name, window, size=size)
            meta = meta_in_tail(tail)
            if meta is not None or len(tail) < window:
                return meta
    except (OpsError, ValueError):
        return None
    return None


def looks_complete(source: Source, *, size: int | None = None) -> bool:
    """Cheap check that a backup was finished, for `backups` and `restore latest`.

    Our files: the meta line is present at the end (an interrupted or truncated backup never
    has it). Encrypted ones: a store publishes only complete objects, and a damaged one is
    found by `verify`. Files without meta (the seed tool's): they end like a JSON object.
    Middle corruption is found only by `verify`, which streams the whole file.
    """
    ref = as_ref(source)
    if is_encrypted_name(ref.name) or read_meta(ref, size=size) is not None:
        return True
    try:
        return _ends_like_json_object(ref)
    except (OpsError, OSError, ValueError, *READ_ERRORS):
        return False


# JSON compresses 5-20x (zstd, gzip); far more is a decompression bomb, not a backup
_MAX_INFLATION = 100


def _ends_like_json_object(ref: BackupRef) -> bool:
    with ref.open() as raw:
        compression = detect(raw.read(4))
        if compression is None:
            return ref.store.read_tail(ref.name, 4096).rstrip().endswith(b"}")
    # no random access into a compressed stream: read to the end (only foreign files get here)
    with ref.open() as raw, decompressing(raw, compression) as fh:
        budget = _MAX_INFLATION * _size(ref) + (1 << 20)
        last = b""
        while block := fh.read(1 << 20):
            last = block.rstrip() or last
            budget -= len(block)
            if budget < 0:
                return False
        return last.endswith(b"}")


def _size(ref: BackupRef) -> int:
    return next((o.size for o in ref.store.list() if o.name == ref.name), 0)

