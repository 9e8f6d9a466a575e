"""What marks a database as the pool's, and which of them nobody accounts for any more.

Every database the pool makes carries two marks: a name of a fixed shape under the `tdb_`
prefix, and a `COMMENT ON DATABASE` starting `tasklets-testdb ` with the kind, the template
hash and the owner (the pool instance that made it). Only a database whose name has that shape
and whose comment is ours - or absent, for the few milliseconds between CREATE DATABASE and
COMMENT, which a kill -9 can hit - is ever dropped; anything else on the server is left alone.

    tdb_tpl_<hash>                 a finished template (IS_TEMPLATE, connections disallowed)
    tdb_bld_<hash>                 a template being built (its name is the build's mutex)
    tdb_<hash8>_<owner>_<n>        a clone, made by pool instance <owner>

An owner is alive while its process runs (same machine: the pid and its start time) or while
its presence session is connected (`application_name` `tasklets-testdb <owner>`, visible to
every role in pg_stat_activity). A database whose owner is gone is an orphan.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

COMMENT_TAG = "tasklets-testdb "
PRESENCE_PREFIX = "tasklets-testdb "
HASH_LENGTH = 24
_TEMPLATE = re.compile(r"tdb_tpl_([0-9a-f]{24})")
_BUILD = re.compile(r"tdb_bld_([0-9a-f]{24})")
_CLONE = re.compile(r"tdb_([0-9a-f]{8})_([0-9a-f]{8})_([0-9]{1,9})")

TEMPLATE, BUILD, CLONE = "template", "build", "clone"


def template_name(template_hash: str) -> str:
    return f"tdb_tpl_{template_hash}"


def build_name(template_hash: str) -> str:
    return f"tdb_bld_{template_hash}"


def clone_name(template_hash: str, owner: str, number: int) -> str:
    return f"tdb_{template_hash[:8]}_{owner}_{number}"


def _machine() -> str:
    """This machine as another process on it would name it: host name and boot id (a
    container shares the boot id but not the host name, nor the process ids)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def _process_start(pid: int) -> str | None:
    """When `pid` started (clock ticks since boot), so a reused pid is not taken for the
    process that died; None when there is no such process or no /proc to ask."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


@dataclass(frozen=True)
class Owner:
    """One pool instance: what its databases' comments name as their owner."""

    id: str
    machine: str
    pid: int
    started: str | None

    @classmethod
    def new(cls) -> Owner:
        pid = os.getpid()
        return cls(secrets.token_hex(4), _machine(), pid, _process_start(pid))

    @property
    def presence(self) -> str:
        return f"{PRESENCE_PREFIX}{self.id}"

    def as_mark(self) -> dict[str, Any]:
        return {"owner": self.id, "machine": self.machine, "pid": self.pid,
                "started": self.started}


def comment_for(kind: str, template_hash: str, owner: Owner | None, **extra: object) -> str:
    body = {"kind": kind, "hash": template_hash, **(owner.as_mark() if owner else {}), **extra}
    return COMMENT_TAG + json.dumps(body, sort_keys=True, separators=(",", ":"))


def parse_comment(text: str | None) -> dict[str, Any] | None:
    """Our mark from a database comment; None when the comment is not ours."""
    if not text or not text.startswith(COMMENT_TAG):
        return None
    try:
        mark = json.loads(text[len(COMMENT_TAG):])
    except ValueError:
        return None
    return mark if isinstance(mark, dict) and mark.get("kind") in (TEMPLATE, BUILD, CLONE) \
        else None


@dataclass
class PoolDatabase:
    """A database that carries the pool's marks."""

    name: str
    kind: str  # template, build or clone
    hash: str  # the full template hash, or its first 8 characters (an uncommented clone)
    owner: str | None  # the instance that made it (None: a template, an uncommented build)
    mark: dict[str, Any] = field(default_factory=dict)  # the comment's fields ({}: no comment yet)

    @property
    def ready(self) -> bool:
        return self.kind == TEMPLATE


def classify(name: str, comment: str | None) -> PoolDatabase | None:
    """The pool database `name` is, or None for one the pool must never touch: a name of
    another shape, or a comment that is not ours or contradicts the name."""
    mark = parse_comment(comment)
    if comment and mark is None:
        return None
    mark = mark or {}
    if found := _TEMPLATE.fullmatch(name):
        if mark.get("kind") == TEMPLATE and mark.get("hash") == found[1]:
            return PoolDatabase(name, TEMPLATE, found[1], None, mark)
        return None
    if found := _BUILD.fullmatch(name):
        # a build's comment says template just before its rename
        if not mark or (mark.get("hash") == found[1] and mark.get("kind") in (BUILD, TEMPLATE)):
            return PoolDatabase(name, BUILD, found[1], mark.get("owner"), mark)
        return None
    found = _CLONE.fullmatch(name)
    if found and (not mark or (mark.get("kind") == CLONE and mark.get("owner") == found[2]
                               and str(mark.get("hash", "")).startswith(found[1]))):
        # a commented clone's mark holds the hash (it starts with found[1], checked above)
        return PoolDatabase(name, CLONE, mark["hash"] if mark else found[1], found[2], mark)
    return None


def pool_databases(conn: psycopg.Connection) -> list[PoolDatabase]:
    """Every database on the server that carries the pool's marks."""
    rows = conn.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        r"WHERE datname LIKE 'tdb\_%' ORDER BY datname").fetchall()
    return [found for name, comment in rows if (found := classify(name, comment))]


def present_owners(conn: psycopg.Connection) -> set[str]:
    """Owners whose presence session is connected to the server."""
    rows = conn.execute("SELECT application_name FROM pg_stat_activity "
                        "WHERE application_name LIKE %s", (PRESENCE_PREFIX + "%",)).fetchall()
    return {name[len(PRESENCE_PREFIX):] for (name,) in rows}


def _alive_here(mark: dict[str, Any]) -> bool | None:
    """Whether the owner process is alive, when it ran on this machine; None otherwise."""
    if mark.get("machine") != _machine() or not isinstance(mark.get("pid"), int):
        return None
    started = _process_start(mark["pid"])
    if started is None:
        return False
    return mark.get("started") in (None, started)


def orphans(conn: psycopg.Connection, me: Owner, *, grace: float) -> list[PoolDatabase]:
    """The pool databases whose owner is gone: clones and unfinished builds, never a template
    (templates outlive their builder for reuse) and never one of `me`'s. An owner that ran on
    another machine counts as gone only when its presence session is missing twice, `grace`
    seconds apart (a server restart or a network blip drops it for a moment)."""
    def candidates() -> list[PoolDatabase]:
        present = present_owners(conn) | {me.id}
        found = []
        for db in pool_databases(conn):
            if db.kind == TEMPLATE or db.owner == me.id:
                continue
            here = _alive_here(db.mark) if db.mark else None
            if here is True or (here is None and db.owner in present):
                continue
            found.append(db)
        return found

    first = candidates()
    if not first or grace <= 0:
        return first
    if all(_alive_here(db.mark) is False for db in first):
        return first
    time.sleep(grace)
    again = {db.name: db for db in candidates()}
    return [again[db.name] for db in first if db.name in again
            and again[db.name].mark == db.mark]
