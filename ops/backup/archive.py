"""The archive: the backups in one store, made once per command from the settings, and what the
tool knows about each of them.

    archive = Archive.from_settings(settings)        # one store, one client, per command
    archive.backups()                                 # one listing: backups, verdicts, sidecars
    archive.facts(backup)                             # kind, completeness, revision, rows
    archive.latest()                                  # what `restore latest` restores
    archive.resolve("backup-....json.zst")            # a name, a path, an URL, or latest

Kinds decide every implicit choice. `latest`, retention, `backups check`, the metrics and drills
consider only full backups unless told otherwise: an anonymized snapshot, a tenant's backup, a
partial (--tables) one or a pre-restore safety backup is never picked in their place (each is
restored by naming it). A backup whose kind or completeness cannot be known without its identity
(an encrypted backup of an older version, which has no sidecar) is never picked either, and never
counts toward what retention keeps.

Verdicts (ops.backup.verdicts) say what was found out later: `latest` prefers backups with a
good one, and a backup with a `.bad` one is never picked.

Change segments (`changes-….jsonl.zst`, written by `capture`) are listed by `segments()`,
from the same listing; they are never taken for backups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ops.backup.files import (
    SAFETY_PREFIX,
    SIDECAR_SUFFIX,
    BackupFile,
    BackupRef,
    as_ref,
    backup_filename,
    looks_complete,
    parse_backup_name,
    read_meta,
)
from ops.backup.integrity import Integrity, open_tenant, read_sidecar
from ops.backup.segment_files import SegmentInfo, commit_time, parse_segment_name
from ops.backup.storage.factory import open_object, open_store
from ops.backup.storage.interface import IncompleteUpload, ObjectInfo, Store
from ops.backup.verdicts import BAD, DRILLED, VERIFIED, Verdicts, record_verdict
from ops.core.config import Settings
from ops.core.errors import NotFound, OpsError
from ops.core.limits import summarize
from ops.core.output import suggest

# What a backup is (from its meta, or its sidecar when encrypted).
FULL = "full"
TENANT = "tenant"
ANONYMIZED = "anonymized"
PARTIAL = "partial"
SAFETY = "safety"
KINDS = (FULL, TENANT, ANONYMIZED, PARTIAL, SAFETY)
# Whether it is whole, as far as can be told without reading it through.
COMPLETE = "complete"
INCOMPLETE = "incomplete"
UNKNOWN = "unknown"  # encrypted and without a sidecar: cannot be told without the identity

GOOD_VERDICTS = (VERIFIED, DRILLED)


def kind_of(name: str, meta: dict[str, Any] | None) -> str:
    """The kind a backup's name and meta make it; an anonymized tenant backup is anonymized
    (what matters most to whoever would restore it)."""
    if name.startswith(SAFETY_PREFIX):
        return SAFETY
    meta = meta or {}
    if meta.get("anonymized") is True:
        return ANONYMIZED
    if isinstance(meta.get("partial"), dict):
        return PARTIAL
    if isinstance(meta.get("tenant"), dict):
        return TENANT
    return FULL


@dataclass(frozen=True)
class Facts:
    """What is known about one backup without decrypting it."""

    kind: str | None  # None: unknown (encrypted, no sidecar)
    completeness: str  # complete | incomplete | unknown
    meta: dict[str, Any] | None = None  # a plain backup's meta line (None: encrypted, or not ours)
    integrity: Integrity | None = None  # its sidecar
    tenant: dict[str, Any] | None = None  # {"id", "name"} for a backup of one tenant
    revision: str | None = None  # the schema revision it was taken at
    rows: int | None = None
    capture: dict[str, Any] | None = None  # where change replay starts (restore --at)

    @property
    def usable(self) -> bool:
        """Known complete and of a known kind: may be picked and counted."""
        return self.completeness == COMPLETE and self.kind is not None


@dataclass
class Listing:
    """One listing of the store, sorted out."""

    backups: list[BackupFile] = field(default_factory=list)  # newest first
    verdicts: Verdicts = field(default_factory=lambda: Verdicts({}))
    sidecars: set[str] = field(default_factory=set)  # backup names that have one
    segments: list[SegmentInfo] = field(default_factory=list)  # change segments, LSN order
    others: list[ObjectInfo] = field(default_factory=list)


class Archive:
    """The backups in one store (a directory or a bucket prefix)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._facts: dict[str, Facts] = {}  # objects are never rewritten: facts stay true
        self._segment_sidecars: dict[str, Integrity] = {}  # (read by coverage, replay, prune)

    @classmethod
    def from_settings(cls, settings: Settings) -> Archive:
        """BACKUP_DIR's archive: made once per command, at the edge (CLI, API, scheduler)."""
        return cls(open_store(settings.backup_dir))

    @classmethod
    def at(cls, location: str | Path) -> Archive:
        """The archive at a location the user gave (--output DIR, a test's directory)."""
        return cls(open_store(location))

    def __str__(self) -> str:
        return str(self.store)

    # -- what the store holds

    def listing(self) -> Listing:
        """Backups (newest first), verdicts and sidecars, from one listing of the store."""
        result = Listing()
        found: dict[str, dict[str, datetime]] = {}
        for info in self.store.list():
            parsed = parse_backup_name(info.name)
            if parsed is not None:
                moment, compression, safety = parsed
                result.backups.append(BackupFile(
                    BackupRef(self.store, info.name), moment, info.size,
                    compression is not None, info.name.endswith(".age"), safety))
                continue
            segment = parse_segment_name(info.name, info.size)
            if segment is not None:
                result.segments.append(segment)
                continue
            stem, dot, suffix = info.name.rpartition(".")
            if dot and "." + suffix == SIDECAR_SUFFIX and parse_segment_name(stem) is not None:
                continue  # a segment's sidecar: read with the segment when needed
            if dot and parse_backup_name(stem) is not None:
                if suffix in (VERIFIED, BAD, DRILLED):
                    found.setdefault(stem, {})[suffix] = info.modified
                    continue
                if "." + suffix == SIDECAR_SUFFIX:
                    result.sidecars.add(stem)
                    continue
            result.others.append(info)
        result.backups.sort(key=lambda b: (b.timestamp, b.name), reverse=True)
        result.segments.sort(key=lambda s: (s.start_lsn, s.end_lsn))
        result.verdicts = Verdicts(found)
        return result

    def backups(self, *, include_safety: bool = True) -> list[BackupFile]:
        """Every backup, newest first; other objects are ignored (and, in a directory, so are
        links that lead outside it: a backup is what the directory holds)."""
        return [b for b in self.listing().backups if include_safety or not b.safety]

    def verdicts(self) -> Verdicts:
        return self.listing().verdicts

    def segments(self) -> list[SegmentInfo]:
        """Change segments (ops.capture.segments), in LSN order, as their names tell; their
        sidecars say more (commit times), read when needed."""
        return self.listing().segments

    def segment_facts(self, info: SegmentInfo) -> SegmentInfo:
        """`info` with what its sidecar says (commit range, counts, revision); as it is when
        the segment has no sidecar."""
        integrity = self._segment_sidecars.get(info.name)
        if integrity is None:
            integrity = read_sidecar(BackupRef(self.store, info.name))
            if integrity is not None:  # (none yet: a segment is stored before its sidecar)
                self._segment_sidecars[info.name] = integrity
        if integrity is None or integrity.segment is None:
            return info
        facts = integrity.segment
        count = facts.get("transactions")
        return replace(info, first_commit=commit_time(facts.get("firstCommit")),
                       last_commit=commit_time(facts.get("lastCommit")),
                       complete_until=commit_time(facts.get("completeUntil")),
                       transactions=count if isinstance(count, int) else None,
                       revision=integrity.revision)

    def facts(self, backup: BackupFile, listing: Listing | None = None) -> Facts:
        """Kind, completeness and what meta says, read once per backup (a range read of a plain
        backup's tail, or its sidecar)."""
        known = self._facts.get(backup.name)
        if known is not None:
            return known
        has_sidecar = listing is None or backup.name in listing.sidecars
        integrity = read_sidecar(backup.ref) if has_sidecar else None
        meta = None if backup.encrypted else read_meta(backup.ref, size=backup.size)
        if integrity is not None:
            completeness = COMPLETE if integrity.size == backup.size else INCOMPLETE
            kind = SAFETY if backup.safety else integrity.kind
            if meta is None and not backup.encrypted:
                completeness = INCOMPLETE  # a plain backup of ours always ends in its meta
        elif meta is not None:
            completeness, kind = COMPLETE, None
        elif backup.encrypted:
            completeness, kind = UNKNOWN, None
        else:  # not ours (the seed tool's), or cut short
            whole = looks_complete(backup.ref, size=backup.size)
            completeness, kind = (COMPLETE if whole else INCOMPLETE), None
        if kind is None and completeness != UNKNOWN:
            kind = kind_of(backup.name, meta)
        tenant = (meta or {}).get("tenant") if meta else (integrity.tenant if integrity else None)
        revision = (meta or {}).get("alembicRevision") if meta else (
            integrity.revision if integrity else None)
        rows = (meta or {}).get("totalRows") if meta else (integrity.rows if integrity else None)
        capture = (meta or {}).get("capture") if meta else (
            integrity.capture if integrity else None)
        facts = Facts(kind, completeness, meta, integrity,
                      tenant if isinstance(tenant, dict) else None,
                      revision if isinstance(revision, str) else None,
                      rows if isinstance(rows, int) else None,
                      capture if isinstance(capture, dict) else None)
        self._facts[backup.name] = facts
        return facts

    # -- picking one

    def latest(self, *, kinds: Iterable[str] = (FULL,),
               accept: Callable[[BackupFile, Facts], bool] | None = None,
               prefer_verified: bool = True) -> BackupFile | None:
        """The backup `restore latest` restores: the newest of those `kinds` that is known
        complete, has no `.bad` verdict and that `accept` takes; with `prefer_verified`, the
        newest with a good verdict when there is one."""
        listing = self.listing()
        wanted = set(kinds)
        candidates = []
        for found in listing.backups:
            if listing.verdicts.is_bad(found.name):
                continue
            facts = self.facts(found, listing)
            if facts.usable and facts.kind in wanted and (accept is None or accept(found, facts)):
                if not prefer_verified:
                    return found
                if self.is_verified(found, listing):
                    return found
                candidates.append(found)
        return candidates[0] if candidates else None

    def latest_for_tenant(self, tenant: str,
                          accept: Callable[[BackupFile, Facts], bool] | None = None, *,
                          prefer_verified: bool = True,
                          identities: Sequence[Any] = ()) -> BackupFile | None:
        """What `restore --tenant T latest` restores: the newest full backup or backup of that
        tenant (an id, a name or a slug) that `accept` takes (`restore --at`: newest before a time).
        The one place a tenant restore's implicit choice is made. An encrypted backup's
        tenant is known by name only through `identities` (its sidecar seals the name)."""
        from ops.core.tenancy import Tenant, pick_tenant

        def holds(found: BackupFile, facts: Facts) -> bool:
            of = open_tenant(facts.tenant, identities)
            if of is None:
                return facts.kind == FULL
            try:
                slug = of.get("slug")
                candidate = Tenant(int(of["id"]), str(of.get("name") or ""),
                                   slug if isinstance(slug, str) else None)
            except (KeyError, TypeError, ValueError):  # a malformed one is not it
                return False
            return pick_tenant([candidate], tenant) is not None

        return self.latest(kinds=(FULL, TENANT), prefer_verified=prefer_verified,
                           accept=holds if accept is None
                           else lambda b, f: holds(b, f) and accept(b, f))

    def is_verified(self, backup: BackupFile, listing: Listing | None = None) -> bool:
        verdicts = (listing or self.listing()).verdicts.of(backup.name)
        return any(kind in verdicts for kind in GOOD_VERDICTS)

    def newest_good(self, listing: Listing | None = None, *, verified: bool = False
                    ) -> BackupFile | None:
        """The newest full backup that is known complete and not bad (`verified`: with a good
        verdict too): what retention never deletes and `backups check` measures."""
        listing = listing or self.listing()
        for found in listing.backups:
            if listing.verdicts.is_bad(found.name):
                continue
            facts = self.facts(found, listing)
            if facts.usable and facts.kind == FULL and (
                    not verified or self.is_verified(found, listing)):
                return found
        return None

    def resolve(self, given: str | Path | None) -> BackupRef:
        """The backup a command names: `latest`, a name in the archive, a path, or an object
        URL (s3://bucket/prefix/backup-....json).

        A bare name is looked up in the archive and must not resolve outside it (`..`,
        symlinks); a name not found there may still be a file in the current directory.
        """
        if given in (None, "", "latest"):
            latest = self.latest()
            if latest is None:
                raise NotFound(f"no complete backup in {self} to restore",
                               hint=f"Create one with {suggest('backup')}, or name a file: "
                               f"{suggest('restore FILE')}.")
            return latest.ref
        text = str(given)
        if "://" in text:
            found = BackupRef(*open_object(text))
            if found.exists():
                return found
            raise self.not_found(text)
        path = Path(text).expanduser()
        if path.is_absolute() or len(path.parts) > 1:
            if path.is_file():
                return as_ref(path)
            raise self.not_found(text)
        directory = self.store.local_directory
        if directory is not None:
            candidate = directory / text
            if not candidate.resolve().is_relative_to(directory.resolve()):
                raise OpsError(f"refusing backup name {text!r}: it points outside BACKUP_DIR "
                               f"({self})", hint="Give a file name inside BACKUP_DIR, or a path.")
        if self.store.exists(text):
            return BackupRef(self.store, text)
        if path.is_file():
            return as_ref(path)
        raise self.not_found(text)

    def not_found(self, given: str) -> NotFound:
        names = [b.name for b in self.backups()]
        if names:
            hint = f"Available backups in {self} (newest first): {summarize(names, 10)}"
        else:
            hint = f"There are no backups in {self}; create one with {suggest('backup')}."
        return NotFound(f"backup not found: {given}", hint=hint)

    # -- changing it

    def ref(self, name: str) -> BackupRef:
        return BackupRef(self.store, name)

    def new_ref(self, moment: datetime, *, compression: str | None = None,
                encrypted: bool = False, safety: bool = False) -> BackupRef:
        """Where a new backup taken at `moment` goes (its default name)."""
        prefix = SAFETY_PREFIX if safety else "backup-"
        return self.ref(backup_filename(moment, compression=compression, encrypted=encrypted,
                                        prefix=prefix))

    def record_verdict(self, ref: BackupRef, kind: str, **details: object) -> None:
        record_verdict(ref, kind, **details)

    def delete(self, backup: BackupFile, listing: Listing) -> None:
        """Delete a backup (and its sidecar), then its verdicts."""
        backup.ref.delete()
        for kind in listing.verdicts.of(backup.name):
            self.store.delete(f"{backup.name}.{kind}")
        self._facts.pop(backup.name, None)

    def delete_segment(self, segment: SegmentInfo) -> None:
        """Delete a change segment and its sidecar."""
        BackupRef(self.store, segment.name).delete()
        self._segment_sidecars.pop(segment.name, None)

    def incomplete_uploads(self) -> list[IncompleteUpload]:
        """Uploads of backups still running or killed mid-way (nothing ever reads them)."""
        return self.store.incomplete_uploads()
