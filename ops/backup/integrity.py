"""What a backup is and whether it is whole, knowable without its identity: a sidecar object.

Every backup we write gets, once it is published, a small JSON object beside it named
`NAME.sum`: the stored object's length and sha256 (of the bytes in the store: ciphertext for an
encrypted backup) and what meta says it is (kind, tenant, revision, rows). The sidecar of an
encrypted backup is read without the identity, so its tenant there is the id alone, the name
and slug sealed to the backup's recipients (`sidecar_tenant`, `open_tenant`):

    backup-2024-01-08T03-00-00-000Z.json.zst.age
    backup-2024-01-08T03-00-00-000Z.json.zst.age.sum   {"size": ..., "sha256": ..., "kind": ...}

Why a sidecar and not a trailer appended to the backup: the backup stays a file the stock tools
read (`age -d`, `zstd -d`, `jq` refuse trailing bytes after the age stream or the JSON), and
old backups need no rewriting. The listing that finds a backup finds its sidecar; a length
that differs from the sidecar's is a truncated backup, found without reading it, and a full
read hashes the stored bytes without decrypting. A backup published by a run killed before
its sidecar was written has none: like an encrypted backup of an older version, its
completeness is unknown (a plain one still has its meta line to show it is whole).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ops.backup.encryption import seal, unseal
from ops.backup.files import SIDECAR_SUFFIX, BackupRef, utc_now
from ops.backup.storage.interface import ObjectExistsError, Writer
from ops.core.errors import OpsError

_SIDECAR_MAX = 64 * 1024  # ours are a few hundred bytes: more is not a sidecar of ours
_READ = 1 << 20


@dataclass(frozen=True)
class Integrity:
    """What the sidecar recorded when the backup was published."""

    size: int
    sha256: str
    kind: str | None = None
    tenant: dict[str, Any] | None = None
    revision: str | None = None
    rows: int | None = None
    # a change segment's range in time and counts (firstCommit, lastCommit, transactions,
    # changes), so coverage is known without reading (or decrypting) the segment
    segment: dict[str, Any] | None = None
    # a backup's consistent start for change replay (meta's "capture"), readable without the
    # identity so `restore --at` picks among encrypted backups too
    capture: dict[str, Any] | None = None


class HashingWriter:
    """Passes writes to a store's writer, hashing the bytes as they go to the store."""

    def __init__(self, raw: Writer) -> None:
        self.raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        written = self.raw.write(data)
        self.digest.update(data)
        self.size += len(data)
        return written

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        return None


def write_sidecar(ref: BackupRef, integrity: Integrity) -> None:
    """Publish `NAME.sum` beside the backup (once: one that exists already is kept)."""
    body = orjson.dumps({"backup": ref.name, "written": utc_now().isoformat(),
                         **{k: v for k, v in integrity.__dict__.items()}}) + b"\n"
    try:
        with ref.store.open_writer(ref.name + SIDECAR_SUFFIX) as writer:
            writer.write(body)
            writer.commit()
    except ObjectExistsError:
        pass


def sidecar_tenant(tenant: dict[str, Any] | None,
                   recipients: Sequence[Any]) -> dict[str, Any] | None:
    """What the sidecar says of a backup's tenant (meta's `tenant`): all of it for a plain
    backup, whose meta says as much; for an encrypted one the id, and the rest sealed to its
    recipients (a tenant's name is its customer's, and the backup was encrypted to hide it)."""
    if tenant is None or not recipients:
        return tenant
    return {"id": tenant.get("id"),
            "sealed": seal({k: v for k, v in tenant.items() if k != "id"}, recipients)}


def open_tenant(tenant: dict[str, Any] | None,
                identities: Sequence[Any]) -> dict[str, Any] | None:
    """A sidecar's tenant with its sealed part opened by `identities`; the id alone when none
    of them opens it."""
    if tenant is None or "sealed" not in tenant:
        return tenant
    opened = unseal(tenant["sealed"], identities)
    return {**(opened if isinstance(opened, dict) else {}), "id": tenant.get("id")}


def read_sidecar(ref: BackupRef) -> Integrity | None:
    """The backup's sidecar; None when it has none, or an unreadable one (nothing can then
    be known from it)."""
    try:
        with ref.store.open_reader(ref.name + SIDECAR_SUFFIX) as fh:
            found = orjson.loads(fh.read(_SIDECAR_MAX + 1)[:_SIDECAR_MAX])
    except (OpsError, ValueError):
        return None
    if not isinstance(found, dict):
        return None
    size, sha256 = found.get("size"), found.get("sha256")
    if not isinstance(size, int) or not isinstance(sha256, str):
        return None
    tenant = found.get("tenant")
    rows = found.get("rows")
    segment, capture = found.get("segment"), found.get("capture")
    return Integrity(size, sha256, _text(found.get("kind")),
                     tenant if isinstance(tenant, dict) else None,
                     _text(found.get("revision")), rows if isinstance(rows, int) else None,
                     segment if isinstance(segment, dict) else None,
                     capture if isinstance(capture, dict) else None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def stored_problem(ref: BackupRef, integrity: Integrity) -> str | None:
    """Read the stored object through and compare its length and sha256 with the sidecar's:
    None when they match, else what differs. Needs no identity."""
    with ref.open() as fh:
        tap = StoredBytesTap(fh)
        return tap.problem(integrity)


class StoredBytesTap(io.RawIOBase):
    """A raw stream over the stored object that hashes every byte read through it, so that a
    reader decrypting and decompressing on top checks the stored bytes in the same pass."""

    def __init__(self, raw: io.BufferedIOBase | Any) -> None:
        self._raw = raw
        self._digest = hashlib.sha256()
        self._size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self._digest.update(data)
        self._size += count
        return count

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def problem(self, integrity: Integrity) -> str | None:
        """Read what is left and compare the whole stored object with the sidecar: None
        when it matches, else what differs."""
        while block := self._raw.read(_READ):
            self._digest.update(block)
            self._size += len(block)
        if self._size != integrity.size:
            return (f"the stored object is {self._size} bytes, {integrity.size} when it was "
                    "written (truncated or appended to)")
        if self._digest.hexdigest() != integrity.sha256:
            return "the stored bytes differ from what was written (sha256 mismatch: corrupted)"
        return None
