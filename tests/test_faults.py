"""The fault-injection suite (marker `faults`): kill -9 at several points of every destructive
command, the server restarted mid-restore and mid-import, a command killed while blocked inside
its transaction, and generated corruptions of backups and beads files. Each case asserts the
database afterwards equals the database before (ordered per-table hashes); the totals are
printed at the end of the test run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from support.beads import make_systech, run_import
from support.faults import (
    ActAt,
    check_unchanged,
    fingerprint,
    run_killed_at,
    wait_for_tool_backends_to_end,
)
from support.restore import insert_sample, table_hashes

from ops.backup.create import backup
from ops.core.config import PROJECT_ROOT, Settings
from ops.core.errors import OpsError
from ops.dev.beads_fixtures import write_synthetic
from ops.restore.apply import restore

pytestmark = pytest.mark.faults

# -- kill -9 ----------------------------------------------------------------------------

@pytest.mark.parametrize("trigger", ["line:⚠️  WARNING", "line:🗑️  Truncating"])
def test_kill_9_before_reset_commits_leaves_every_row(settings: Settings, conn, trigger: str,
                                                      fault_ledger: list[dict]):
    insert_sample(conn)
    before = table_hashes(conn)
    run_killed_at(settings.database_url, str(settings.backup_dir), trigger,
                  "from ops.restore.reset import reset; reset(settings, confirm=True, report=R)")
    wait_for_tool_backends_to_end(settings.database_url)
    check_unchanged(fault_ledger, f"reset kill -9 at {trigger}", before,
                    fingerprint(settings.database_url))


def test_kill_9_while_reset_waits_inside_its_transaction_leaves_every_row(
        settings: Settings, conn, cli_env: dict, fault_ledger: list[dict]):
    """A reader holds a lock on one table, so the TRUNCATE blocks mid-statement; kill it there."""
    insert_sample(conn)
    before = table_hashes(conn)
    with psycopg.connect(settings.database_url) as reader:
        reader.execute("LOCK TABLE comments IN ACCESS SHARE MODE")
        proc = subprocess.Popen([sys.executable, "-m", "ops", "reset", "--confirm"],
                                env=cli_env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                waiting = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'tasklets-db' AND wait_event_type = 'Lock' AND query ILIKE 'TRUNCATE%'"
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.1)
            else:
                pytest.fail("reset never blocked on the lock")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.rollback()
    wait_for_tool_backends_to_end(settings.database_url)
    check_unchanged(fault_ledger, "reset kill -9 blocked mid-TRUNCATE", before,
                    fingerprint(settings.database_url))


SCALE_CALL = ("from ops.seed.builtin import run_seeds; "
              "run_seeds(settings, lookups=True, sample=True, scale=0.3, report=R)")


@pytest.mark.parametrize("trigger", [
    "line:✅ Created tenant",  # early: lookups written, nothing committed
    "progress:📈 Volume data:2",  # in the middle of a COPY
    "line:✅ tasks:",  # volume tables loaded, commit not reached
])
def test_kill_9_during_seed_sample_scale_leaves_nothing_half_seeded(
        settings: Settings, conn, trigger: str, fault_ledger: list[dict]):
    before = table_hashes(conn)
    run_killed_at(settings.database_url, str(settings.backup_dir), trigger, SCALE_CALL)
    wait_for_tool_backends_to_end(settings.database_url)
    check_unchanged(fault_ledger, f"seed --scale kill -9 at {trigger}", before,
                    fingerprint(settings.database_url))


@pytest.fixture
def beads_files(tmp_path: Path) -> tuple[Path, Path]:
    """A first export and a newer one (more issues; the first ones unchanged)."""
    return (write_synthetic(tmp_path / "v1.jsonl", 600),
            write_synthetic(tmp_path / "v2.jsonl", 1500))


@pytest.mark.parametrize("trigger", [
    "line:✅ Found product",
    "progress:🔄 Syncing work items:1",
    "progress:🔄 Syncing work items:3",
])
def test_kill_9_during_import_beads_keeps_the_previous_import(
        settings: Settings, conn, beads_files, trigger: str, fault_ledger: list[dict]):
    make_systech(conn)
    v1, v2 = beads_files
    run_import(settings, v1)
    before = table_hashes(conn)
    call = ("from ops.beads.importer import ImportOptions, import_beads; "
            f"import_beads(settings, ImportOptions(file=Path({str(v2)!r})), report=R)")
    run_killed_at(settings.database_url, str(settings.backup_dir), trigger, call)
    wait_for_tool_backends_to_end(settings.database_url)
    check_unchanged(fault_ledger, f"import beads kill -9 at {trigger}", before,
                    fingerprint(settings.database_url))


# -- the server restarted mid-command -----------------------------------------------------

def restart(cluster) -> None:
    """An immediate stop, as a crash would; the test cluster runs with synchronous_commit off,
    so the tests CHECKPOINT their setup first or the crash could lose it, restore or not."""
    cluster.stop("immediate")
    cluster.start()


def test_server_restart_mid_restore_leaves_the_database_as_before(
        settings: Settings, conn, pg_cluster, fault_ledger: list[dict]):
    insert_sample(conn)
    good = backup(settings).path
    conn.execute("UPDATE tasks SET title = title || ' (changed)'")
    conn.execute("CHECKPOINT")
    before = table_hashes(conn)
    conn.close()
    reporter = ActAt(lambda: restart(pg_cluster), line="✅ tenants")
    with pytest.raises(OpsError):
        restore(settings, good, safety_backup=False, report=reporter)
    assert reporter.fired
    check_unchanged(fault_ledger, "restore with server restart", before,
                    fingerprint(settings.database_url))


def test_server_restart_mid_import_keeps_the_previous_import(
        settings: Settings, conn, beads_files, pg_cluster, fault_ledger: list[dict]):
    make_systech(conn)
    v1, v2 = beads_files
    run_import(settings, v1)
    conn.execute("CHECKPOINT")
    before = table_hashes(conn)
    conn.close()
    reporter = ActAt(lambda: restart(pg_cluster), progress="🔄 Syncing work items", nth=2)
    from ops.beads.importer import ImportOptions, import_beads

    with pytest.raises((OpsError, psycopg.OperationalError)):
        import_beads(settings, ImportOptions(file=v2), report=reporter)
    assert reporter.fired
    check_unchanged(fault_ledger, "import beads with server restart", before,
                    fingerprint(settings.database_url))


# -- generated corruptions ------------------------------------------------------------------

def _corruptions() -> st.SearchStrategy:
    """(kind, position fraction, payload) describing one corruption of a backup file."""
    return st.tuples(
        st.sampled_from(["truncate", "flip", "wrong_type", "duplicate_key", "dangling_fk",
                         "hostile_table", "hostile_column", "duplicate_row"]),
        st.floats(min_value=0, max_value=1, exclude_max=True),
        st.sampled_from(['"; DROP TABLE tasks; --', "x\u0000y", "tasks\" CASCADE", "ü🚀",
                         "a" * 300, "pg_catalog.pg_class"]),
    )


def corrupt(text: str, kind: str, where: float, payload: str) -> str:
    lines = text.split("\n")
    rows = [i for i, line in enumerate(lines) if i and line.startswith("{\"")]  # 0: header
    pick = rows[int(where * len(rows))] if rows else 0
    if kind == "truncate":
        return text[: int(where * len(text))]
    if kind == "flip":
        pos = int(where * len(text))
        return text[:pos] + chr((ord(text[pos]) + 1) % 0x80 or 1) + text[pos + 1:]
    row = lines[pick].rstrip(",")
    comma = "," if lines[pick].endswith(",") else ""
    obj = json.loads(row)
    key = sorted(obj)[int(where * len(obj))]
    if kind == "wrong_type":
        obj[key] = {"unexpected": [payload]}
    elif kind == "duplicate_key":
        lines[pick] = row[:-1] + f', "{key}": {json.dumps(payload)}}}' + comma
        return "\n".join(lines)
    elif kind == "dangling_fk":
        fk = next((k for k in sorted(obj) if k.endswith("Id") and obj[k] is not None), key)
        obj[fk] = 987654321
    elif kind == "hostile_column":
        obj[payload] = 1
    elif kind == "duplicate_row":
        lines.insert(pick, json.dumps(obj, ensure_ascii=False) + ",")
        return "\n".join(lines)
    elif kind == "hostile_table":
        opener = next(i for i, line in enumerate(lines) if line.endswith(": ["))
        lines[opener] = json.dumps(payload) + ": ["
        return "\n".join(lines)
    lines[pick] = json.dumps(obj, ensure_ascii=False) + comma
    return "\n".join(lines)


@pytest.fixture
def backed_up(settings: Settings, conn) -> tuple[str, dict, dict]:
    """(backup text, hashes of the backed-up data, hashes of the changed current data)."""
    insert_sample(conn)
    good = backup(settings).path
    backed = table_hashes(conn)
    conn.execute("UPDATE tasks SET title = title || ' (changed)'")
    conn.execute("DELETE FROM comments")
    return good.read_text(), backed, table_hashes(conn)


@hyp_settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
@given(corruption=_corruptions())
def test_corrupted_backups_fail_cleanly_or_restore_exactly(
        settings: Settings, backed_up, tmp_path: Path, corruption, fault_ledger: list[dict]):
    text, backed, current = backed_up
    kind, where, payload = corruption
    path = tmp_path / "corrupt.json"
    path.write_text(corrupt(text, kind, where, payload))
    try:
        restore(settings, path, safety_backup=False)
    except OpsError as exc:
        assert "\n" not in exc.message and exc.exit_code == 1
        check_unchanged(fault_ledger, f"corrupt backup ({kind})", current,
                        fingerprint(settings.database_url))
        return
    # A corruption the format tolerates (e.g. a flipped byte in the header timestamp) must
    # restore the backed-up data exactly; then put the changed data back for the next example.
    after = fingerprint(settings.database_url)
    fault_ledger.append({"case": f"corrupt backup ({kind}) tolerated", "unchanged": False,
                   "tolerated": after == backed, "rows_lost": 0})
    assert after == backed
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("UPDATE tasks SET title = title || ' (changed)'")
        conn.execute("DELETE FROM comments")
    assert fingerprint(settings.database_url) == current


_BAD_LINES = st.one_of(
    st.text(min_size=1, max_size=80).filter(lambda s: "\n" not in s and "\r" not in s
                                            and s.strip() and not s.strip().startswith("{")),
    st.builds(lambda s: "{" + s, st.text(max_size=40).filter(lambda s: "\n" not in s
                                                              and "\r" not in s)),
    st.builds(lambda d: json.dumps(d), st.dictionaries(
        st.sampled_from(["title", "status", "priority", "labels"]),
        st.one_of(st.text(max_size=10), st.integers()), max_size=3)),  # no id
    st.just('["an", "array"]'), st.just("null"), st.just('"just a string"'),
)


@hyp_settings(max_examples=30, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
@given(bad=_BAD_LINES, where=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_beads_file_with_a_malformed_line_fails_naming_it_and_changes_nothing(
        settings: Settings, conn, tmp_path: Path, bad: str, where: float, fault_ledger: list[dict]):
    if not conn.execute("SELECT 1 FROM tenants WHERE name = 'SysTech'").fetchone():
        make_systech(conn)
        run_import(settings, write_synthetic(tmp_path / "v1.jsonl", 100))
    before = table_hashes(conn)
    lines = write_synthetic(tmp_path / "v2.jsonl", 150).read_text().splitlines()
    at = 2 + int(where * (len(lines) - 2))  # after the header and memory lines
    lines.insert(at, bad)
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OpsError) as err:
        run_import(settings, path)
    assert f"line {at + 1}" in err.value.message
    check_unchanged(fault_ledger, "beads malformed line", before, table_hashes(conn))
