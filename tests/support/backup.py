"""Small builders for the backup/verify/prune tests (data, file sections, fake backups)."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import datetime
from pathlib import Path

import psycopg
import zstandard

from ops.backup.files import backup_filename, iso_timestamp
from ops.backup.format import TABLES_END, header_line, meta_line, open_backup
from ops.seed.helpers import tenant_slug


def add_tenants_and_clients(conn: psycopg.Connection, tenants: int = 2,
                            clients_each: int = 2) -> None:
    """A few tenants, each with clients (a parent table and an FK child)."""
    for t in range(tenants):
        tenant_id = conn.execute(
            "INSERT INTO tenants (name, slug, plan, settings) VALUES (%s, %s, 'enterprise', %s) "
            "RETURNING id", (f"Tenant {t} \"quoted\" ✓",
                             tenant_slug(conn, f"Tenant {t} quoted"),
                             json.dumps({"seats": t, "x": [1.50]}))
        ).fetchone()[0]
        for c in range(clients_each):
            conn.execute("INSERT INTO clients (tenant_id, name, email) VALUES (%s, %s, %s)",
                         (tenant_id, f"Client {t}-{c}", f"c{t}{c}@example.com"))


def file_lines(path: Path) -> list[bytes]:
    with open_backup(path) as fh:
        return fh.read().split(b"\n")


def table_section(path: Path) -> bytes:
    """Everything between the header line and the meta line (the tables themselves)."""
    lines = file_lines(path)
    assert lines[-1] == b"" and lines[-2].startswith(b'"meta": ')
    return b"\n".join(lines[1:-2])


def load(path: Path) -> dict:
    with open_backup(path) as fh:
        return json.loads(fh.read())


def write_fake_backup(directory: Path, moment: datetime, *, complete: bool = True,
                      safety: bool = False) -> Path:
    """A tiny backup file in our layout (complete = with its meta line)."""
    prefix = "pre-restore-" if safety else "backup-"
    path = directory / backup_filename(moment, prefix=prefix)
    body = header_line(iso_timestamp(moment)) + b'"tenants": [\n]\n' + TABLES_END
    if complete:
        body += meta_line({"tables": ["tenants"], "rowCounts": {"tenants": 0},
                           "sha256": {"tenants": hashlib.sha256().hexdigest()}, "totalRows": 0})
    path.write_bytes(body)
    return path


def decompress(data: bytes) -> bytes:
    """A whole .json.zst or .json.gz file's bytes, as the stock tools would give them."""
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True) \
            .decompress(data)
    return gzip.decompress(data)
