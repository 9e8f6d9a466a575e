"""Volume data for benchmarks and load tests: `seed sample --scale N`.

One unit is roughly 10 clients, 50 users, 20 products, 200 epics, 1,000 features, 10,000
tasks, 2,000 task dependencies, 500 tickets, 5,000 comments and 10,200 item tags (~29k rows;
see `volume_rows.UNIT`). Fractional scales (0.05) give small data sets for tests.
Design choices, so that `--scale 100` (millions of rows) runs in minutes in flat memory:

- Rows come from generators (ops.seed.volume_rows) and go straight into `COPY ... FROM STDIN`;
  no table is ever held in memory, whatever N is.
- Ids are assigned here, from a range starting past both max(id) and the identity sequence, so
  every foreign key is computed arithmetically (feature j belongs to epic j*E//F, ...) instead
  of being read back. The tables are locked against other writers meanwhile, and the identity
  sequences are moved past the new rows at the end.
- Deterministic: each table draws from its own seeded generator and every timestamp is offset
  from a fixed date, so the same --random-seed on the same starting database gives identical
  rows.
- Volume users all share ONE bcrypt hash of the sample password, computed once per run with a
  salt derived from the random seed: bcrypt per row would take hours at cost 10, and a random
  salt would break determinism. These are synthetic load-test accounts; the sample users get
  their own random salts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from ops.core.db import scalar
from ops.core.defaults import DEFAULT_RANDOM_SEED
from ops.core.errors import UsageError
from ops.core.indexes import FOREIGN_KEY, SetAside, rebuild, set_aside
from ops.core.output import SILENT, Advance, Reporter
from ops.core.passwords import hash_password, salt_from_bytes
from ops.core.vocabulary import SAMPLE_PASSWORD
from ops.seed.volume_rows import ID_TABLES, STREAMS, Context, Plan, Texts

PROGRESS_STEP = 2_000
LARGE_LOAD_SHARE = 0.1


@dataclass
class VolumeResult:
    scale: float
    random_seed: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> int:
        return int(self.total_rows / self.seconds) if self.seconds else 0


def generate_volume(conn: psycopg.Connection, tenant_id: int, *, scale: float,
                    random_seed: int = DEFAULT_RANDOM_SEED,
                    report: Reporter = SILENT) -> VolumeResult:
    """Stream `scale` units of realistic data for the tenant into the caller's transaction."""
    if scale <= 0:
        raise UsageError(f"--scale must be greater than 0, got {scale:g}")
    started = time.monotonic()
    report.line("")
    report.line(f"📈 Generating volume data: scale {scale:g}, random seed {random_seed}...")
    # Other writers wait until we commit, so the id ranges below stay ours; readers go on.
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(
        sql.SQL(", ").join(sql.Identifier(table) for table, *_ in STREAMS)))
    tag_ids = [row[0] for row in conn.execute(
        "SELECT id FROM tags WHERE tenant_id = %s ORDER BY id", (tenant_id,))]
    ctx = Context(
        Plan.for_scale(scale), tenant_id, random_seed,
        {table: _next_free_id(conn, table) for table in ID_TABLES}, tag_ids,
        hash_password(SAMPLE_PASSWORD, salt=seeded_salt(random_seed)), Texts(random_seed))
    result = VolumeResult(scale, random_seed)
    planned = {table: count(ctx) for table, *_, count in STREAMS}
    large = _large_loads(conn, planned)
    with foreign_keys_suspended(conn, large), \
            report.progress("📈 Volume data", sum(planned.values())) as advance:
        for table, columns, rows, _ in STREAMS:
            result.rows[table] = _copy(conn, table, columns, rows(ctx), advance)
    for table in ID_TABLES:
        if result.rows[table]:
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                         (f"public.{table}", ctx.id(table, result.rows[table] - 1)))
    if large:  # fresh statistics now, so the benchmarks that follow get realistic plans
        conn.execute(sql.SQL("ANALYZE {}").format(
            sql.SQL(", ").join(sql.Identifier(table) for table in large)))
    result.seconds = round(time.monotonic() - started, 3)
    for table, count in result.rows.items():
        report.line(f"✅ {table}: {count:,} rows")
    report.line(f"📊 Volume data: {result.total_rows:,} rows in {result.seconds:.1f}s "
                f"({result.rows_per_second:,} rows/s)")
    return result


def _large_loads(conn: psycopg.Connection, planned: dict[str, int]) -> list[str]:
    """Tables that grow by at least 10%: for them re-validating every row beats RI triggers.

    Adding 0.1 units to a table of millions would otherwise re-check (and re-analyze) all the
    millions; small additions keep the constraints and leave statistics to autovacuum.
    """
    estimates: dict[str, int] = dict(conn.execute(
        "SELECT relname, greatest(reltuples, 0)::bigint FROM pg_class"
        " WHERE oid = ANY(%s::regclass[])", ([f"public.{t}" for t in planned],)).fetchall())
    return [table for table, rows in planned.items()
            if rows > 0 and rows >= LARGE_LOAD_SHARE * estimates.get(table, 0)]


@contextmanager
def foreign_keys_suspended(conn: psycopg.Connection, tables: list[str]) -> Iterator[bool]:
    """Drop the foreign keys on `tables` for a bulk load, then re-add them (validating every row).

    What pg_restore does: per-row RI triggers made the load ~4x slower and queue one trigger
    event per row in server memory, while re-adding a constraint checks all rows in one join.
    Must run inside the caller's transaction: on an error the rollback restores the
    constraints. Yields False (and changes nothing) for no tables, or when they cannot be
    dropped (a role that does not own them): the load then runs with them in place, slower.
    """
    aside = set_aside(conn, tables, kinds=(FOREIGN_KEY,)) if tables else SetAside()
    suspended = bool(aside.definitions)
    yield suspended
    if suspended:
        rebuild(conn, aside)


def _next_free_id(conn: psycopg.Connection, table: str) -> int:
    """First id past both the rows present and the identity sequence's last value."""
    query = sql.SQL(
        "SELECT greatest((SELECT coalesce(max(id), 0) FROM {}),"
        " coalesce((SELECT last_value FROM pg_sequences"
        "  WHERE format('%%I.%%I', schemaname, sequencename)"
        "   = pg_get_serial_sequence(%s, 'id')), 0)) + 1"
    ).format(sql.Identifier(table))
    next_id: int = scalar(conn, query, (f"public.{table}",))
    return next_id


def seeded_salt(random_seed: int) -> bytes:
    """A valid `$2b$` bcrypt salt derived from the seed (see the module docstring for why)."""
    return salt_from_bytes(random.Random(f"{random_seed}:password").randbytes(16))


def _copy(conn: psycopg.Connection, table: str, columns: tuple[str, ...],
          rows: Iterable[tuple[Any, ...]], advance: Advance) -> int:
    query = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)))
    written = 0
    cur = conn.cursor()
    # The queued writer sends on a background thread while Python builds the next rows.
    with cur, cur.copy(query, writer=QueuedLibpqWriter(cur)) as copy:
        for row in rows:
            copy.write_row(row)
            written += 1
            if written % PROGRESS_STEP == 0:
                advance(PROGRESS_STEP)
    advance(written % PROGRESS_STEP)
    return written
