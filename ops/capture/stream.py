"""Changes streamed over the replication protocol: the server decodes each WAL record once.

The SQL functions capture can also read through (`pg_logical_slot_peek_binary_changes`, then
`pg_replication_slot_advance`) start decoding at the slot's restart point every time, and the
restart point trails by up to a running-transactions record (logged every 15 s): under a steady
write load each read and each advance decoded 60-110 MB of WAL again, and capture's reads took
more CPU than the load's own writes. A replication connection keeps one decoding context open:
each record is decoded once, and the slot moves when capture confirms what it stored.

psycopg 3 has no replication API; its libpq wrapper speaks the COPY BOTH sub-protocol that
START_REPLICATION opens: XLogData ('w') and keepalive ('k') messages in, standby status
updates ('r') out. A logical replication connection (replication=database) is matched by the
ordinary pg_hba.conf lines of its database, not by the `replication` ones, and needs the role's
REPLICATION (rds_replication on RDS) like the SQL functions: it works wherever those do, except
through a pooler or with every wal sender taken, where capture reads over SQL instead.
"""

from __future__ import annotations

import select
import struct
import time
from collections.abc import Iterator

import psycopg
from psycopg import errors, pq
from psycopg.conninfo import make_conninfo

from ops.capture.slot import PROTOCOL
from ops.core.db import CONNECT_TIMEOUT_SECONDS

# Microseconds between the Unix epoch and PostgreSQL's (2000-01-01), for the status updates.
_PG_EPOCH_OFFSET_US = 946_684_800_000_000
_XLOG_DATA = struct.Struct("!QQq")  # WAL start, WAL end, send time
_KEEPALIVE = struct.Struct("!Qq?")  # WAL end, send time, reply requested
_STATUS = struct.Struct("!cQQQq?")  # 'r', written, flushed, applied, client time, reply asked
# What answers a replication connection that cannot be had here: a pooler (PgBouncer, which
# does not pass the protocol on), or a server whose wal sender processes are all taken. The
# SQL functions need neither.
_REFUSED = ("unsupported startup parameter", "exceeds max_wal_senders",
            "no pg_hba.conf entry for replication")
_NO_REPLICATION_ROLE = "must be superuser or replication role"


class StreamRefused(Exception):
    """The server does not accept a replication connection here (capture reads over SQL)."""


class ReplicationStream:
    """One START_REPLICATION of a pgoutput slot; `messages()` yields its payloads."""

    def __init__(self, pgconn: pq.abc.PGconn) -> None:
        self.pgconn = pgconn
        self.confirmed = 0  # what the server was last told is stored

    @classmethod
    def open(cls, database_url: str, slot: str, publication: str) -> ReplicationStream:
        """Connect in replication mode and start streaming from where the slot stands.
        StreamRefused when pg_hba.conf or the role does not allow it; a psycopg
        OperationalError for any other failure (the server down: capture retries)."""
        conninfo = make_conninfo(database_url, replication="database",
                                 connect_timeout=str(CONNECT_TIMEOUT_SECONDS),
                                 application_name="tasklets-capture")
        pgconn = pq.PGconn.connect(conninfo.encode())
        if pgconn.status != pq.ConnStatus.OK:
            message = _text(pgconn.error_message)
            pgconn.finish()
            if any(words in message for words in _REFUSED):
                raise StreamRefused(message)
            if _NO_REPLICATION_ROLE in message:
                raise errors.InsufficientPrivilege(message)
            raise psycopg.OperationalError(message)
        command = (f"START_REPLICATION SLOT {_identifier(slot)} LOGICAL 0/0 (proto_version "
                   f"'{PROTOCOL}', publication_names '{_quoted(publication)}', "
                   "messages 'true')")
        result = pgconn.exec_(command.encode())
        if result.status != pq.ExecStatus.COPY_BOTH:
            message = _text(result.error_message or pgconn.error_message)
            state = result.error_field(pq.DiagnosticField.SQLSTATE)
            pgconn.finish()
            raise _error_class(state)(message)
        pgconn.nonblocking = 1
        return cls(pgconn)

    def messages(self, deadline: float) -> Iterator[bytes]:
        """The pgoutput messages that arrive before `deadline` (time.monotonic()); keepalives
        are answered here. Returns at the deadline, or when nothing is waiting and the
        deadline has passed."""
        pgconn = self.pgconn
        while True:
            size, data = pgconn.get_copy_data(1)
            if size > 0:
                kind = data[0]
                if kind == 0x77:  # 'w': XLogData
                    yield bytes(data[_XLOG_DATA.size + 1:])
                elif kind == 0x6B and _KEEPALIVE.unpack_from(data, 1)[2]:  # 'k', reply asked
                    self._send_status()
                continue
            if size < 0:
                raise psycopg.OperationalError(
                    f"the replication stream ended: {_text(pgconn.error_message)}")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([pgconn.socket], [], [], min(left, 1.0))
            if ready:
                pgconn.consume_input()

    def confirm(self, lsn: int) -> None:
        """Tell the server everything up to `lsn` is stored: the slot may move there."""
        self.confirmed = max(self.confirmed, lsn)
        self._send_status()

    def _send_status(self) -> None:
        now = int(time.time() * 1_000_000) - _PG_EPOCH_OFFSET_US
        lsn = self.confirmed
        if self.pgconn.put_copy_data(_STATUS.pack(b"r", lsn, lsn, lsn, now, False)) != 1:
            raise psycopg.OperationalError("cannot send to the replication stream: "
                                           f"{_text(self.pgconn.error_message)}")
        while self.pgconn.flush() == 1:  # 1: not all of it went out yet
            select.select([], [self.pgconn.socket], [], 1.0)

    def close(self, timeout: float = 5.0) -> None:
        """End the stream the way the protocol does (CopyDone, then the server's), so that the
        server has taken the last confirmation when this returns: the next reader of the slot
        finds it where the stored segments end, and free. A dead connection is just closed."""
        pgconn = self.pgconn
        deadline = time.monotonic() + timeout
        try:
            if pgconn.status == pq.ConnStatus.OK and pgconn.put_copy_end() == 1:
                while pgconn.flush() == 1 and time.monotonic() < deadline:
                    select.select([], [pgconn.socket], [], 0.1)
                while time.monotonic() < deadline:  # the server's data, then its CopyDone
                    size, _ = pgconn.get_copy_data(1)
                    if size < 0:
                        break
                    if size == 0:
                        select.select([pgconn.socket], [], [], 0.1)
                        pgconn.consume_input()
                while time.monotonic() < deadline:  # START_REPLICATION's own result
                    pgconn.consume_input()
                    if pgconn.is_busy():
                        select.select([pgconn.socket], [], [], 0.1)
                    elif pgconn.get_result() is None:
                        break
        except psycopg.Error:
            pass
        finally:
            pgconn.finish()


def _text(message: bytes | None) -> str:
    lines = (message or b"").decode(errors="replace").strip().splitlines()
    return lines[0] if lines else "connection lost"


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quoted(value: str) -> str:
    return value.replace("'", "''")


def _error_class(state: bytes | None) -> type[psycopg.Error]:
    """The psycopg exception of a SQLSTATE (the slot in use: ObjectInUse; invalidated:
    ObjectNotInPrerequisiteState), as an ordinary connection would raise it."""
    try:
        return errors.lookup(state.decode()) if state else psycopg.OperationalError
    except KeyError:
        return psycopg.OperationalError
