"""A stalled storage server (frozen with SIGSTOP) fails a restore within STORAGE_TIMEOUT with
one line, while no table is locked, and leaves the database as it was."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager

import pytest
from support.restore import insert_sample, table_hashes
from support.storage import start_server, use_server_env

from ops.backup.create import backup
from ops.backup.storage.remote import storage_timeout
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.restore.apply import restore

TIMEOUT = 2


@pytest.fixture(params=["s3"])
def s3(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """A private server of the kind (the tests freeze it); S3 tries each request twice."""
    server = start_server(request.param)
    try:
        use_server_env(monkeypatch, server)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        yield server
    finally:
        server.process.send_signal(signal.SIGCONT)
        server.stop()


class FreezeOnFirstChunk:
    """A Reporter that freezes the server once the download has received its first bytes,
    and records whether any session held a table lock while it was frozen."""

    quiet = True

    def __init__(self, server, conn) -> None:
        self.server, self.conn = server, conn
        self.frozen = threading.Event()
        self.locks_while_frozen = -1

    def line(self, text: str = "") -> None:
        pass

    def warn(self, text: str) -> None:
        pass

    @contextmanager
    def progress(self, description: str, total: int | None):
        def advance(n: int = 1) -> None:
            if description.startswith("⬇️") and not self.frozen.is_set():
                self.server.process.send_signal(signal.SIGSTOP)
                self.frozen.set()
                self.locks_while_frozen = _locks_of_others(self.conn)

        yield advance


@pytest.mark.faults
@pytest.mark.parametrize("s3", ["s3", "gs", "az"], indirect=True)
def test_a_restore_from_a_stalled_server_fails_in_time_with_nothing_locked(
        db_url: str, conn, s3, monkeypatch: pytest.MonkeyPatch):
    insert_sample(conn)  # and ~25 MB more, so the download outlasts the socket buffers
    conn.execute("INSERT INTO comments (id, tenant_id, task_id, body) SELECT 100 + g, 1, 10, "
                 "repeat(md5(g::text), 20) FROM generate_series(1, 40000) g")
    good = backup(settings := Settings(database_url=db_url, app_env="test",
                                       backup_dir=s3.location("stall")))
    before = table_hashes(conn)
    monkeypatch.setenv("STORAGE_TIMEOUT", str(TIMEOUT))  # the emulators upload slower
    reporter = FreezeOnFirstChunk(s3, conn)
    started = time.monotonic()
    with pytest.raises(OpsError) as caught:
        restore(settings, good.name, report=reporter)  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert reporter.frozen.is_set()
    assert reporter.locks_while_frozen == 0
    assert elapsed < 2 * TIMEOUT * 2 + 10, elapsed  # attempts x timeout, plus slack
    message = caught.value.message
    assert "\n" not in message and "failed" in message, message
    assert table_hashes(conn) == before
    assert _locks_of_others(conn) == 0


def _locks_of_others(conn) -> int:
    """Table locks other client sessions hold here: autovacuum, which may well be analysing
    the rows just inserted, takes its own and is not what the restore must not hold."""
    return conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'relation' AND l.pid <> pg_backend_pid() "
        "AND a.backend_type = 'client backend' "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()[0]


def test_the_storage_timeout_setting_is_read_and_checked(monkeypatch):
    monkeypatch.delenv("STORAGE_TIMEOUT", raising=False)
    assert storage_timeout() == 60
    monkeypatch.setenv("STORAGE_TIMEOUT", "7")
    assert storage_timeout() == 7
    monkeypatch.setenv("STORAGE_TIMEOUT", "soon")
    with pytest.raises(OpsError) as refused:
        storage_timeout()
    assert "STORAGE_TIMEOUT" in refused.value.message


class FreezeAtLine:
    """A Reporter that freezes the server when a line starting with `prefix` is reported."""

    quiet = True

    def __init__(self, server, prefix: str) -> None:
        self.server, self.prefix = server, prefix

    def line(self, text: str = "") -> None:
        if text.startswith(self.prefix):
            self.server.process.send_signal(signal.SIGSTOP)

    def warn(self, text: str) -> None:
        pass

    @contextmanager
    def progress(self, description: str, total: int | None):
        yield lambda n=1: None


@pytest.mark.faults
def test_a_backup_to_a_stalled_s3_server_fails_in_time_and_releases_its_locks(
        db_url: str, conn, s3, monkeypatch: pytest.MonkeyPatch):
    insert_sample(conn)
    conn.execute("INSERT INTO tasks (id, tenant_id, product_id, title, description) SELECT "
                 "1000 + g, 1, 1, 't', repeat(md5(g::text), 40) FROM generate_series(1, 30000) g")
    settings = Settings(database_url=db_url, app_env="test",
                        backup_dir=s3.location("stall-up"))
    monkeypatch.setenv("STORAGE_TIMEOUT", str(TIMEOUT))
    started = time.monotonic()
    with pytest.raises(OpsError) as caught:
        backup(settings, report=FreezeAtLine(s3, "✅ tenants"))  # type: ignore[arg-type]
    elapsed = time.monotonic() - started
    assert "\n" not in caught.value.message and "S3" in caught.value.message
    assert elapsed < 60, elapsed  # without the setting: minutes (60 s per request)
    assert _locks_of_others(conn) == 0


# Every kind of request the tool makes, each on its own: a bound on downloads alone leaves a
# listing, a check or a delete waiting for the client library's own timeout (a minute), once
# per retry, when the server stalls.
REQUESTS = {
    "list": lambda store: store.list(),
    "exists": lambda store: store.exists("kept.bin"),
    "read tail": lambda store: store.read_tail("kept.bin", 16),
    "read": lambda store: store.open_reader("kept.bin").read(),
    "delete": lambda store: store.delete("kept.bin"),
    "write": lambda store: _write(store, "new.bin"),
}
QUICK = 1  # seconds: every request here is a small one


def _write(store, name: str) -> None:
    with store.open_writer(name) as writer:
        writer.write(b"x" * 1024)
        writer.commit()


@pytest.mark.faults
@pytest.mark.parametrize("s3", ["s3", "gs", "az"], indirect=True)
def test_every_request_to_a_stalled_server_fails_in_time(s3, monkeypatch: pytest.MonkeyPatch):
    from ops.backup.storage.factory import open_store

    _write(open_store(s3.location("every")), "kept.bin")
    monkeypatch.setenv("STORAGE_TIMEOUT", str(QUICK))
    s3.process.send_signal(signal.SIGSTOP)
    slow = {}
    for what, request in REQUESTS.items():
        store = open_store(s3.location("every"))  # a new client: settings are read then
        started = time.monotonic()
        with pytest.raises(OpsError) as caught:
            request(store)
        elapsed = time.monotonic() - started
        assert "\n" not in caught.value.message, (what, caught.value.message)
        if elapsed > 4 * QUICK + 6:  # attempts x timeout, backoff, connect: seconds, not minutes
            slow[what] = round(elapsed, 1)
    assert not slow, slow
