"""Helpers for the change-capture tests: a slot per test (dropped after), reading back every
stored change."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import psycopg

from ops.backup.archive import Archive
from ops.capture.segments import Origin, Transaction, read_segment
from ops.capture.service import Capture, CaptureOptions
from ops.core.config import Settings
from ops.core.db import identity_of
from ops.core.output import SILENT

_NUMBERS = itertools.count()


def slot_name() -> str:
    """A slot name no other test (nor another test process) uses: slots are per server."""
    return f"capture_test_{os.getpid()}_{next(_NUMBERS)}"


def origin_of(settings: Settings) -> Origin:
    """The database `settings` names, as capture writes it into a segment's header."""
    identity = identity_of(settings)
    return Origin(identity.system_identifier or "", identity.database)


def drop_slot(url: str, slot: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(50):
            row = conn.execute("SELECT active_pid FROM pg_replication_slots "
                               "WHERE slot_name = %s", (slot,)).fetchone()
            if row is None:
                break
            if row[0] is None:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                break
            conn.execute("SELECT pg_sleep(0.1)")
        conn.execute(f'DROP PUBLICATION IF EXISTS "{slot}"')


@contextlib.contextmanager
def running(settings: Settings, slot: str, **options: object) -> Iterator[Capture]:
    """Capture running in a thread (a segment every 0.1 s) while the block runs."""
    capture = Capture(settings, Archive.from_settings(settings),
                      CaptureOptions(slot=slot, flush_every=0.1, initial_backup=False,
                                     **options))  # type: ignore[arg-type]
    capture.open()
    runner = threading.Thread(target=capture.run, daemon=True)
    runner.start()
    try:
        yield capture
    finally:
        capture.stop_event.set()
        runner.join(timeout=60)
    assert not runner.is_alive()


def drain(settings: Settings, slot: str, **options: object) -> Capture:
    """Run capture once (until caught up) on `slot`; the Capture, for its progress."""
    report = options.pop("report", SILENT)
    capture = Capture(settings, Archive.from_settings(settings),
                      CaptureOptions(slot=slot, once=True, **options),  # type: ignore[arg-type]
                      report=report)  # type: ignore[arg-type]
    capture.open()
    capture.run()
    return capture


def stored_transactions(archive: Archive, *, dedupe: bool = True) -> list[Transaction]:
    """Every stored transaction, segments in LSN order; a transaction stored twice once."""
    infos = sorted(archive.segments(), key=lambda info: (info.start_lsn, info.end_lsn))
    seen: set[tuple[int, int]] = set()
    found = []
    for info in infos:
        for tx in read_segment(archive, info):
            if dedupe and (tx.xid, tx.lsn) in seen:
                continue
            seen.add((tx.xid, tx.lsn))
            found.append(tx)
    return found


def segment_ranges(archive: Archive) -> list[tuple[int, int]]:
    return sorted((info.start_lsn, info.end_lsn) for info in archive.segments())


def changes_of(transactions: list[Transaction], table: str) -> Iterator[tuple[str, dict]]:
    for tx in transactions:
        for change in tx.changes:
            if change.table == table:
                yield change.op, {"row": change.row, "key": change.key,
                                  "unchanged": change.unchanged}


class Gate:
    """A TCP forwarder to a server that can be closed (connections refused, open ones cut)
    and opened again: a store that becomes unreachable for a while, with its data kept."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = _free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self.open()

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
