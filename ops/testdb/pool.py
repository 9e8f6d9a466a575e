"""A pool of clones per template, made ahead in the background, handed out one test each.

Handing out is a dictionary operation (no SQL): clones are made beforehand by worker threads
(`CREATE DATABASE ... TEMPLATE`, FILE_COPY where the server has it), and a returned one is
dropped (or, when the caller says it did not write to it, put back) off the caller's path.
A lease not returned in time is reclaimed: the database is dropped, its sessions closed.
The pool is bounded by the number of databases it holds and by their estimated size on disk.

Each pool is one `Owner`: its databases' comments name it, a presence session says it is alive,
and at start it drops the orphans of owners that are gone (after a kill -9, a lost machine);
at close it drops every database it made. Templates stay for the next run; a template whose
recipe now hashes differently is dropped once no clone of it is left anywhere.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from ops.core.db import first_line, scalar
from ops.core.errors import NotFound, OpsError, UsageError
from ops.core.output import SILENT, Reporter
from ops.testdb.admin import Admin, create_database, drop_pool_database
from ops.testdb.marks import CLONE, Owner, clone_name, comment_for, orphans, pool_databases
from ops.testdb.recipe import DEFAULT_RECIPE, Recipe, recipe_hash
from ops.testdb.templates import Template, drop_template, ensure_template

MB = 1_000_000


class PoolExhausted(OpsError):
    """Every database the bounds allow is out: nothing to hand out within the wait."""


@dataclass(frozen=True)
class Limits:
    ready: int = 2  # clones made ahead per template
    max_databases: int = 32  # clones this pool holds at once, idle and leased
    max_disk_bytes: int | None = None  # estimated size of those clones (None: no bound)
    lease_seconds: float | None = None  # None: a lease never expires
    workers: int = 2  # threads making and dropping clones
    grace: float = 5.0  # how long a missing presence session must stay missing (orphans)

    def __post_init__(self) -> None:
        if self.ready < 0 or self.max_databases < 1 or self.workers < 1:
            raise UsageError("the pool needs ready >= 0, max databases >= 1 and workers >= 1")


@dataclass(frozen=True)
class Lease:
    name: str
    url: str
    hash: str
    expires_in: float | None  # seconds
    cold: bool = False  # no clone was ready: the caller waited for one to be made


@dataclass
class _Template:
    info: Template
    recipe: Recipe
    idle: deque[str] = field(default_factory=deque)
    making: int = 0
    waiting: int = 0
    superseded: bool = False
    retire_after: float = 0.0  # when to look again for clones of a replaced template


@dataclass
class _Lease:
    hash: str
    handed_at: float
    expires_at: float | None


@dataclass
class Counters:
    handed_out: int = 0
    cold: int = 0  # hand-outs that found no clone ready and waited for one
    made: int = 0
    dropped: int = 0
    recycled: int = 0
    reclaimed: int = 0
    orphans_dropped: int = 0
    templates_built: int = 0
    templates_dropped: int = 0
    # the latest timings only: a long-running server must not grow with its history
    clone_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    handout_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    last_error: str | None = None


def _percentile(values: deque[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


class Pool:
    """Templates by hash and their clones for one pool instance (see the module's doc)."""

    def __init__(self, admin: Admin, limits: Limits = Limits(), *,
                 advertise: str | None = None, report: Reporter = SILENT) -> None:
        self.admin = admin
        self.limits = limits
        self.owner = Owner.new()
        self.report = report
        self.counters = Counters()
        self._advertise = advertise  # the server URL as clients reach it (default: ours)
        self._templates: dict[str, _Template] = {}
        self._leases: dict[str, _Lease] = {}
        self._to_drop: deque[tuple[str, str]] = deque()  # (name, template hash)
        self._number = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._presence: psycopg.Connection | None = None
        self._build_lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Pool:
        """Say we are alive, then start the workers (the first one sweeps orphans first)."""
        self._presence = self.admin.connect(application_name=self.owner.presence)
        for number in range(self.limits.workers):
            thread = threading.Thread(target=self._work, args=(number == 0,), daemon=True,
                                      name=f"testdb-pool-{number}")
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop the workers and drop every database this pool made (leased ones too)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=60)
        with contextlib.suppress(OpsError, psycopg.Error), self.admin.connect() as conn:
            for db in pool_databases(conn):
                if db.kind == CLONE and db.owner == self.owner.id:
                    drop_pool_database(conn, self.admin, db.name)
        if self._presence is not None:
            self._presence.close()

    def __enter__(self) -> Pool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ templates

    def ensure(self, recipe: Recipe = DEFAULT_RECIPE) -> Template:
        """The template for `recipe` as its inputs stand now, built if missing; clones of it
        are made ahead from now on, and an older template of the same recipe stops being."""
        template_hash = recipe_hash(recipe, self.admin.base)
        with self._cond:
            known = self._templates.get(template_hash)
            if known is not None and not known.superseded:
                return replace(known.info, built=False)
        with self._build_lock:
            template = ensure_template(self.admin, recipe, template_hash, self.owner,
                                       grace=self.limits.grace, report=self.report)
        with self._cond:
            if template.built:
                self.counters.templates_built += 1
            for other in self._templates.values():
                if other.recipe.family == recipe.family and other.info.hash != template_hash:
                    other.superseded = True
            if known is None or known.superseded:
                self._templates[template_hash] = _Template(template, recipe)
            self._cond.notify_all()
        return template

    def _rebuild(self, template: _Template) -> None:
        """Build a template again that vanished under the pool (another pool retired it)."""
        with self._build_lock:
            info = ensure_template(self.admin, template.recipe, template.info.hash,
                                   self.owner, grace=self.limits.grace, report=self.report)
        with self._cond:
            template.info = info
            self.counters.templates_built += info.built

    def _template(self, template_hash: str | None) -> _Template:
        if template_hash is None:
            current = [t for t in self._templates.values() if not t.superseded]
            if len(current) != 1:
                raise UsageError("name the template (its hash): this pool has "
                                 f"{len(current)} templates")
            return current[0]
        found = self._templates.get(template_hash)
        if found is None:
            raise NotFound(f"no template {template_hash} in this pool",
                           hint="Ensure it first (POST /templates, `tasklets-db testdb "
                           "ensure`).")
        return found

    # ------------------------------------------------------------------ leases

    def lease(self, template_hash: str | None = None, *, wait: float = 30.0) -> Lease:
        """A database of its own for the caller: a made-ahead clone, or the next one made."""
        started = time.monotonic()
        deadline = started + wait
        with self._cond:
            template = self._template(template_hash)
            template.waiting += 1
            cold = not template.idle
            self.counters.cold += cold
            self._cond.notify_all()
            try:
                while not template.idle:
                    self._raise_if_stuck(template, deadline)
                    self._cond.wait(max(0.0, min(0.5, deadline - time.monotonic())))
                name = template.idle.popleft()
            finally:
                template.waiting -= 1
            now = time.monotonic()
            expires = now + self.limits.lease_seconds if self.limits.lease_seconds else None
            self._leases[name] = _Lease(template.info.hash, now, expires)
            self.counters.handed_out += 1
            self.counters.handout_ms.append((now - started) * 1000)
            self._cond.notify_all()  # a worker makes the next one
        return Lease(name, self.url_for(name), template.info.hash, self.limits.lease_seconds,
                     cold)

    def _raise_if_stuck(self, template: _Template, deadline: float) -> None:
        if self._stopping:
            raise OpsError("the test-database pool is shutting down")
        if template.superseded and not template.idle:
            raise OpsError(f"template {template.info.hash} was replaced by a newer one",
                           hint="Ensure the template again for its current hash.")
        if time.monotonic() < deadline:
            return
        out = len(self._leases)
        blocked = self._blocked()
        raise PoolExhausted(
            f"no test database ready within the wait: {out} out, "
            f"{blocked or 'the clones are still being made'}"
            + (f"; last error: {self.counters.last_error}" if self.counters.last_error else ""),
            hint="Return databases when done (DELETE /databases/NAME, `tasklets-db testdb "
            "put NAME`), or raise --max-databases / --max-disk.")

    def give_back(self, name: str, *, recycle: bool = False) -> None:
        """Return a leased database: dropped, or with `recycle` (the caller did not change
        it and closed its sessions) handed out again as it is."""
        with self._cond:
            lease = self._leases.pop(name, None)
        if lease is None:
            raise NotFound(f"{name} is not leased from this pool (returned already, or "
                           "reclaimed when its lease expired)")
        keep = recycle and not self._in_use(name)
        with self._cond:
            template = self._templates.get(lease.hash)
            if keep and template is not None and not template.superseded:
                template.idle.append(name)
                self.counters.recycled += 1
            else:
                self._to_drop.append((name, lease.hash))
            self._cond.notify_all()

    def _in_use(self, name: str) -> bool:
        try:
            with self.admin.connect() as conn:
                sessions: int = scalar(
                    conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,))
                return sessions > 0
        except (OpsError, psycopg.Error):
            return True

    def url_for(self, name: str) -> str:
        from ops.core.config import url_with_database

        return url_with_database(self._advertise or self.admin.settings.database_url, name)

    # ------------------------------------------------------------------ the workers

    def _work(self, sweeps: bool) -> None:
        """Keep each template's clones made ahead, drop what is returned or expired; every
        error is counted and retried after a pause (the server may be restarting)."""
        conn: psycopg.Connection | None = None
        swept = not sweeps
        checked = time.monotonic()
        while True:
            try:
                if sweeps and time.monotonic() - checked > 2.0:
                    checked = time.monotonic()
                    self._keep_presence()
                if conn is None or conn.closed:
                    conn = self.admin.connect()
                if not swept:
                    self._sweep(conn)
                    swept = True
                if not self._step(conn):
                    return
            except (OpsError, psycopg.Error) as exc:
                message = exc.message if isinstance(exc, OpsError) else first_line(exc)
                with self._cond:
                    self.counters.last_error = message
                    if self._stopping:
                        return
                    self._cond.wait(0.5)
                if conn is not None and not conn.closed:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = None
                if sweeps:  # the first worker keeps the presence session, alone
                    self._keep_presence()
            except Exception as exc:  # a bug: keep the pool alive, say what it was
                with self._cond:
                    self.counters.last_error = f"{exc.__class__.__name__}: {exc}"
                    if self._stopping:
                        return
                    self._cond.wait(1.0)

    def _step(self, conn: psycopg.Connection) -> bool:
        """One piece of work, if there is any within a moment; False when the pool stops."""
        with self._cond:
            self._reclaim_expired()
            job = self._next_job()
            if job is None:
                if self._stopping:
                    return False
                self._cond.wait(0.25)
                return True
        kind, target = job
        if kind == "drop":
            name = target[0]
            try:
                dropped = drop_pool_database(conn, self.admin, name)
            except BaseException:
                with self._cond:
                    self._to_drop.append(target)
                raise
            with self._cond:
                self.counters.dropped += dropped
        elif kind == "make":
            self._make(conn, self._templates[target[1]])
        elif kind == "retire":
            self._retire(conn, target[1])
        return True

    def _next_job(self) -> tuple[str, tuple[str, str]] | None:
        """What a worker does next: drops first, unless a caller is waiting for a clone -
        then making it comes first (the bounds count databases still to drop, so a backlog
        of drops stops the making before the server fills up)."""
        if self._stopping:
            return None
        hungry = any(t.waiting and not t.superseded for t in self._templates.values())
        if self._to_drop and not hungry:
            return "drop", self._to_drop.popleft()
        for template in self._templates.values():
            if template.superseded:
                if template.idle:
                    return "drop", (template.idle.popleft(), template.info.hash)
                if not self._clones_out(template.info.hash) and template.making == 0 \
                        and time.monotonic() >= template.retire_after:
                    template.retire_after = time.monotonic() + 5.0
                    return "retire", ("", template.info.hash)
                continue
            wanted = self.limits.ready + template.waiting
            if len(template.idle) + template.making < wanted and self._room(template):
                template.making += 1
                return "make", ("", template.info.hash)
        if self._to_drop:
            return "drop", self._to_drop.popleft()
        return None

    def _clones_out(self, template_hash: str) -> int:
        return sum(1 for lease in self._leases.values() if lease.hash == template_hash)

    def _held(self) -> int:
        return len(self._leases) + len(self._to_drop) + sum(
            len(t.idle) + t.making for t in self._templates.values())

    def _room(self, template: _Template) -> bool:
        if self._held() >= self.limits.max_databases:
            return False
        if self.limits.max_disk_bytes is None:
            return True
        return self._estimated_bytes() + template.info.size <= self.limits.max_disk_bytes

    def _estimated_bytes(self) -> int:
        sizes = {t.info.hash: t.info.size for t in self._templates.values()}
        held = [lease.hash for lease in self._leases.values()]
        held += [template_hash for _, template_hash in self._to_drop]
        for t in self._templates.values():
            held += [t.info.hash] * (len(t.idle) + t.making)
        return sum(sizes.get(h, 0) for h in held)

    def _blocked(self) -> str:
        if self._held() >= self.limits.max_databases:
            return f"the pool holds its maximum of {self.limits.max_databases} databases"
        if self.limits.max_disk_bytes is not None:
            return (f"about {self._estimated_bytes() / MB:.0f} MB of the "
                    f"{self.limits.max_disk_bytes / MB:.0f} MB disk bound are used")
        return ""

    def _make(self, conn: psycopg.Connection, template: _Template) -> None:
        with self._cond:
            self._number += 1
            name = clone_name(template.info.hash, self.owner.id, self._number)
        started = time.monotonic()
        try:
            create_database(conn, self.admin, name,
                            comment_for(CLONE, template.info.hash, self.owner),
                            template=template.info.name)
        except psycopg.errors.InvalidCatalogName:
            with self._cond:
                template.making -= 1
            self._rebuild(template)
            return
        except BaseException:
            with self._cond:
                template.making -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            template.making -= 1
            self.counters.made += 1
            self.counters.clone_ms.append((time.monotonic() - started) * 1000)
            if template.superseded or self._stopping:
                self._to_drop.append((name, template.info.hash))
            else:
                template.idle.append(name)
            self._cond.notify_all()

    def _retire(self, conn: psycopg.Connection, template_hash: str) -> None:
        """Drop a replaced template once no clone of it exists on the server (any pool's)."""
        others = any(db.kind == CLONE and db.hash.startswith(template_hash[:8])
                     for db in pool_databases(conn))
        if not others and drop_template(conn, self.admin, template_hash):
            with self._cond:
                self.counters.templates_dropped += 1
        with self._cond:
            if not others:
                self._templates.pop(template_hash, None)

    def _reclaim_expired(self) -> None:
        now = time.monotonic()
        for name, lease in list(self._leases.items()):
            if lease.expires_at is not None and lease.expires_at <= now:
                del self._leases[name]
                self._to_drop.append((name, lease.hash))
                self.counters.reclaimed += 1

    def _sweep(self, conn: psycopg.Connection) -> None:
        for db in orphans(conn, self.owner, grace=self.limits.grace):
            if drop_pool_database(conn, self.admin, db.name):
                with self._cond:
                    self.counters.orphans_dropped += 1
                self.report.line(f"🧹 Dropped orphan {db.name} (its pool {db.owner} is gone)")

    def _keep_presence(self) -> None:
        """Reconnect the presence session after the server dropped it (a restart)."""
        presence = self._presence
        try:
            if presence is None or presence.closed or presence.broken:
                self._presence = self.admin.connect(application_name=self.owner.presence)
            else:
                presence.execute("SELECT 1")
        except (OpsError, psycopg.Error):
            with contextlib.suppress(psycopg.Error):
                if presence is not None:
                    presence.close()
            self._presence = None

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """What the pool holds and has done, for /status and `testdb status` (no URLs)."""
        now = time.monotonic()
        with self._cond:
            templates = [{
                "hash": t.info.hash, "name": t.info.name, "family": t.info.family,
                "size_bytes": t.info.size, "idle": len(t.idle), "making": t.making,
                "leased": self._clones_out(t.info.hash), "superseded": t.superseded,
            } for t in self._templates.values()]
            leases = [{
                "name": name, "hash": lease.hash, "age_seconds": round(now - lease.handed_at, 1),
                "expires_in": None if lease.expires_at is None
                else round(lease.expires_at - now, 1),
            } for name, lease in self._leases.items()]
            c = self.counters
            return {
                "owner": self.owner.id,
                "templates": templates,
                "leases": leases,
                "limits": {"ready": self.limits.ready,
                           "max_databases": self.limits.max_databases,
                           "max_disk_bytes": self.limits.max_disk_bytes,
                           "lease_seconds": self.limits.lease_seconds},
                "held": self._held(),
                "estimated_bytes": self._estimated_bytes(),
                "counters": {
                    "handed_out": c.handed_out, "cold": c.cold, "made": c.made,
                    "dropped": c.dropped, "recycled": c.recycled, "reclaimed": c.reclaimed,
                    "orphans_dropped": c.orphans_dropped, "templates_built": c.templates_built,
                    "templates_dropped": c.templates_dropped,
                },
                "clone_ms": {"median": _percentile(c.clone_ms, 0.5),
                             "p95": _percentile(c.clone_ms, 0.95)},
                "handout_ms": {"median": _percentile(c.handout_ms, 0.5),
                               "p95": _percentile(c.handout_ms, 0.95)},
                "last_error": c.last_error,
            }


def open_pool(admin: Admin, limits: Limits = Limits(), **options: object) -> Pool:
    # options are Pool's keyword arguments, passed through:
    return Pool(admin, limits, **options).start()  # type: ignore[arg-type]


__all__ = ["Lease", "Limits", "Pool", "PoolExhausted", "Template", "open_pool"]
