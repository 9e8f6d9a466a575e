"""`restore --tenant`: one tenant's rows replaced from a tenant or a full backup, every other
tenant exactly as it is now; both foreign-key modes; new ids; references across tenants;
the safety backup; the dry run; every bad input in one line with nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from support.restore import table_hashes
from support.tenants import (
    GLOBEX,
    SYSTECH,
    change_both_tenants,
    insert_two_tenants,
    tenant_counts,
    tenant_hashes,
)

from ops.backup.archive import Archive
from ops.backup.create import backup
from ops.backup.files import read_meta
from ops.core.catalog import discover_tables
from ops.core.config import Settings
from ops.core.errors import OpsError
from ops.core.tenancy import Tenant
from ops.restore.apply import DEFERRED, REPLICA
from ops.restore.checks import validate_foreign_keys
from ops.restore.tenant import restore_tenant

OTHERS = (SYSTECH, 2)  # the tenants a restore of Globex must leave alone


@pytest.fixture
def two_tenants(conn: psycopg.Connection) -> None:
    insert_two_tenants(conn)


@pytest.fixture
def owner_settings(owner_db_url: str, backup_dir: Path) -> Settings:
    return Settings(database_url=owner_db_url, backup_dir=backup_dir, app_env="test")


def every_reference_holds(conn: psycopg.Connection) -> None:
    tables = discover_tables(conn)
    validate_foreign_keys(conn, tables, {t.name for t in tables})


def snapshot(conn: psycopg.Connection) -> dict[int, dict]:
    return {tenant: tenant_hashes(conn, tenant) for tenant in (*OTHERS, GLOBEX)}


def safety_backups(backup_dir: Path) -> list[Path]:
    return [b.path for b in Archive.at(backup_dir).backups() if b.safety]


@pytest.mark.parametrize("source", ["tenant backup", "tenant backup, compressed",
                                    "full backup"])
def test_restore_tenant_gives_it_back_exactly_and_the_others_as_they_are_now(
        settings: Settings, conn, two_tenants, source: str):
    made = backup(settings, tenant=None if source == "full backup" else "Globex",
                  compression="zstd" if "compressed" in source else None)
    globex = tenant_hashes(conn, GLOBEX)
    change_both_tenants(conn)
    now = snapshot(conn)
    assert now[GLOBEX] != globex and now[SYSTECH] != tenant_hashes(conn, GLOBEX)

    result = restore_tenant(settings, made.path, "Globex")

    assert tenant_hashes(conn, GLOBEX) == globex
    for other in OTHERS:
        assert tenant_hashes(conn, other) == now[other]
    every_reference_holds(conn)
    assert result.fk_mode == REPLICA and result.tenant == Tenant(GLOBEX, "Globex")
    assert result.tables == {name: rows for name, (rows, _) in globex.items()}
    for name, (rows, _) in now[GLOBEX].items():  # what was there, less, plus: the backup's
        assert rows - result.deleted[name] + result.inserted[name] == result.tables[name]
    # rows identical to the backup's were left as they were: only the changes were written
    assert result.inserted["users"] == result.deleted["users"] == 0
    assert 0 < result.total_inserted < result.total_rows
    assert result.deleted["tasks"] == now[GLOBEX]["tasks"][0]  # every title was edited
    assert result.inserted["tasks"] == globex["tasks"][0]
    assert result.checksums_verified
    assert (result.other_rows_skipped > 0) == (source == "full backup")
    # new rows get ids past everything, in both tenants
    conn.execute("INSERT INTO tasks (tenant_id, product_id, title) VALUES (3, 2, 'after'), "
                 "(1, 1, 'after')")


def test_changes_that_equality_would_miss_are_restored_too(settings: Settings, conn,
                                                           two_tenants):
    """Rows are left in place only when identical to the backup's, not merely equal."""
    made = backup(settings, tenant="Globex")
    globex = tenant_hashes(conn, GLOBEX)
    conn.execute("""
        UPDATE tasks SET metadata = '{"w": 0.1}' WHERE id = 15;  -- jsonb: 0.10 = 0.1
        UPDATE tenants SET settings = '{"seats": 12.5}' WHERE id = 3;  -- 12.50 = 12.5
        UPDATE tasks SET updated_at = updated_at + interval '1 microsecond' WHERE id = 5;
        UPDATE epics SET labels = '{x,"y z",NULL}' WHERE id = 2;
    """)

    result = restore_tenant(settings, made.path, "Globex")

    assert tenant_hashes(conn, GLOBEX) == globex
    assert result.deleted == {**dict.fromkeys(result.deleted, 0), "tasks": 2, "tenants": 1,
                              "epics": 1}
    assert result.inserted == result.deleted


def test_the_safety_backup_holds_the_replaced_rows_and_undoes_the_restore(
        settings: Settings, conn, two_tenants):
    made = backup(settings, tenant="Globex")
    change_both_tenants(conn)
    changed = snapshot(conn)

    result = restore_tenant(settings, made.path, "3")

    assert result.safety_backup is not None
    safety = Path(result.safety_backup)
    assert safety.name.startswith("pre-restore-")
    assert read_meta(safety)["tenant"] == {"id": GLOBEX, "name": "Globex", "slug": "globex"}
    assert read_meta(safety)["totalRows"] == sum(rows for rows, _ in changed[GLOBEX].values())
    restore_tenant(settings, safety, "Globex", safety_backup=False)
    assert snapshot(conn) == changed


def test_a_table_owner_restores_a_tenant_with_deferred_foreign_keys(owner_settings: Settings):
    settings = owner_settings
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        assert not conn.execute("SELECT rolsuper FROM pg_roles "
                                "WHERE rolname = current_user").fetchone()[0]
        insert_two_tenants(conn)
        made = backup(settings, tenant="Globex")
        globex = tenant_hashes(conn, GLOBEX)
        change_both_tenants(conn)
        now = snapshot(conn)

        result = restore_tenant(settings, made.path, "Globex")

        assert result.fk_mode == DEFERRED
        assert tenant_hashes(conn, GLOBEX) == globex
        # with foreign-key triggers on, every row is replaced (see test_..._identical_rows)
        assert result.deleted == {name: rows for name, (rows, _) in now[GLOBEX].items()}
        assert all(tenant_hashes(conn, t) == now[t] for t in OTHERS)
        every_reference_holds(conn)
        assert result.safety_backup is not None and Path(result.safety_backup).exists()


def test_new_ids_add_the_tenant_again_with_every_reference_rewritten(
        settings: Settings, conn, two_tenants):
    made = backup(settings, tenant="Globex")
    before = snapshot(conn)

    result = restore_tenant(settings, made.path, "Globex", new_ids=True,
                            rename="Globex (copy)")

    copy_id = result.new_tenant_id
    assert copy_id is not None and copy_id > GLOBEX
    assert conn.execute("SELECT name FROM tenants WHERE id = %s",
                        (copy_id,)).fetchone()[0] == "Globex (copy)"
    assert tenant_counts(conn, copy_id) == tenant_counts(conn, GLOBEX)
    assert snapshot(conn) == before  # Globex itself and the others untouched
    every_reference_holds(conn)
    # the copy's rows reference the copy's rows only
    assert conn.execute("SELECT count(*) FROM tasks t JOIN products p ON p.id = t.product_id "
                        "WHERE t.tenant_id = %s AND p.tenant_id <> t.tenant_id",
                        (copy_id,)).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM tasks c JOIN tasks p ON p.id = c.parent_task_id "
                        "WHERE c.tenant_id = %s AND p.tenant_id <> %s",
                        (copy_id, copy_id)).fetchone()[0] == 0
    # every public id was taken by Globex's own rows here: all regenerated, and reported
    assert result.public_ids_regenerated == {
        t: tenant_counts(conn, GLOBEX)[t] for t in ("epics", "features", "tasks", "tickets")}
    assert result.total_deleted == 0 and result.safety_backup is None


def test_dry_run_prints_the_counts_to_delete_and_to_load_and_changes_nothing(
        run_cli, settings: Settings, conn, two_tenants):
    made = backup(settings, tenant="Globex")
    change_both_tenants(conn)
    before = table_hashes(conn)

    done = run_cli("restore", made.path.name, "--tenant", "Globex", "--dry-run")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = lines.index("🔍 Dry run: restoring tenant Globex (id 3) would delete and load:")
    assert lines[start + 1].split() == ["table", "delete", "load"]
    printed = {line.split()[0]: [int(n) for n in line.split()[1:]]
               for line in lines[start + 2:-2]}
    assert lines[-1] == "Nothing was changed."
    assert table_hashes(conn) == before and not safety_backups(settings.backup_dir)
    as_json = json.loads(run_cli("restore", made.path.name, "--tenant", "3", "--dry-run",
                                 "--json").stdout)
    assert as_json["dry_run"] is True
    assert printed == {name: [as_json["deleted"][name], as_json["inserted"][name]]
                       for name in tenant_counts(conn, GLOBEX)}
    # exactly what the real restore then deletes and loads
    real = restore_tenant(settings, made.path, "Globex")
    assert (real.deleted, real.inserted) == (as_json["deleted"], as_json["inserted"])
    assert 0 < real.total_deleted < sum(tenant_counts(conn, GLOBEX).values())


def test_latest_is_the_newest_backup_that_may_hold_the_tenant(settings: Settings, conn,
                                                               two_tenants):
    globex = backup(settings, tenant="Globex")
    backup(settings, tenant="SysTech")  # newer, of another tenant

    assert restore_tenant(settings, "latest", "Globex", dry_run=True).source == str(globex.path)
    full = backup(settings)
    assert restore_tenant(settings, None, "3", dry_run=True).source == str(full.path)


def test_cli_restore_tenant_end_to_end(run_cli, settings: Settings, conn, two_tenants):
    made = backup(settings, tenant="Globex")
    globex = tenant_hashes(conn, GLOBEX)
    change_both_tenants(conn)

    done = run_cli("restore", "latest", "--tenant", "Globex")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "🔄 Starting restore of tenant Globex..."
    assert f"📂 Reading backup: {made.path}" in lines
    assert "🔒 Locking tenant Globex (id 3)'s rows..." in lines
    assert any(line.startswith("💾 Safety backup of tenant Globex (id 3)'s current rows: ")
               for line in lines)
    assert lines[-2] == "✅ Tenant restore completed: Globex (id 3)"
    assert lines[-1].startswith("📊 Rows: ") and lines[-1].endswith(
        "inserted, the rest identical); other tenants untouched")
    assert tenant_hashes(conn, GLOBEX) == globex


# ---------------------------------------------------------------- references across tenants

def test_a_reference_from_another_tenant_to_a_row_the_restore_brings_back_is_kept(
        settings: Settings, conn, two_tenants):
    conn.execute("UPDATE tasks SET assignee_id = 3 WHERE id = 10")  # SysTech task, Globex user
    made = backup(settings, tenant="Globex")
    change_both_tenants(conn)
    systech = tenant_hashes(conn, SYSTECH)

    restore_tenant(settings, made.path, "Globex")

    assert tenant_hashes(conn, SYSTECH) == systech
    assert conn.execute("SELECT assignee_id FROM tasks WHERE id = 10").fetchone()[0] == 3


def test_a_reference_from_another_tenant_to_a_row_the_backup_lacks_stops_the_restore(
        settings: Settings, conn, two_tenants):
    made = backup(settings, tenant="Globex")
    new_user = conn.execute(
        "INSERT INTO users (tenant_id, email, name, password_hash, role) VALUES "
        "(3, 'late@globex.test', 'Late', 'hash', 'developer') RETURNING id").fetchone()[0]
    conn.execute("UPDATE tasks SET assignee_id = %s WHERE id = 10", (new_user,))
    before = table_hashes(conn)

    with pytest.raises(OpsError, match=rf"table tasks row id=10 \(assignee_id={new_user}\) "
                                       r"references a users row of tenant Globex \(id 3\) "
                                       r"that would be gone"):
        restore_tenant(settings, made.path, "Globex")
    assert table_hashes(conn) == before and not safety_backups(settings.backup_dir)


def test_as_table_owner_any_reference_from_another_tenant_is_refused_up_front(
        owner_settings: Settings):
    settings = owner_settings
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        insert_two_tenants(conn, volume=0)
        conn.execute("UPDATE tasks SET assignee_id = 3 WHERE id = 10")
        made = backup(settings, tenant="Globex")
        before = table_hashes(conn)

        with pytest.raises(OpsError, match=r"table tasks row id=10 \(assignee_id=3\), outside "
                                           r"tenant Globex \(id 3\), references one of its users "
                                           r"rows .* would change it through the key's ON DELETE "
                                           r"action"):
            restore_tenant(settings, made.path, "Globex")
        assert table_hashes(conn) == before and not safety_backups(settings.backup_dir)


def test_a_restored_row_referencing_a_row_outside_the_tenant_is_refused(
        settings: Settings, conn, two_tenants):
    conn.execute("INSERT INTO users (id, tenant_id, email, name, password_hash, role) VALUES "
                 "(90, 1, 'gone@systech.test', 'Gone', 'hash', 'support')")
    conn.execute("UPDATE tasks SET assignee_id = 90 WHERE id = 5")  # Globex task, SysTech user
    made = backup(settings, tenant="Globex")
    conn.execute("UPDATE tasks SET assignee_id = NULL WHERE id = 5")
    conn.execute("DELETE FROM users WHERE id = 90")
    before = table_hashes(conn)

    with pytest.raises(OpsError, match=r"table tasks row id=5: assignee_id=90 points to a "
                                       r"users row outside tenant Globex \(id 3\)"):
        restore_tenant(settings, made.path, "Globex")
    assert table_hashes(conn) == before


# ---------------------------------------------------------------- bad input

def one_line(done) -> tuple[int, list[str]]:
    assert "Traceback" not in done.stderr
    return done.returncode, done.stderr.splitlines()


def test_a_backup_lacking_the_tenant_is_one_line_and_changes_nothing(
        run_cli, settings: Settings, conn):
    from support.restore import insert_sample

    insert_sample(conn)
    made = backup(settings)  # before Globex existed
    insert_two_tenants_rest(conn)
    before = table_hashes(conn)

    code, err = one_line(run_cli("restore", made.path.name, "--tenant", "Globex"))

    assert code == 1
    assert err == [f"❌ backup {made.path.name} holds no tenant 'Globex' (it holds SysTech (id "
                   "1), Other \"quoted\" tenant (id 2)); nothing was changed",
                   "💡 Name the tenant by its exact name or id in that backup, or pick a "
                   "backup made while it existed (`tasklets-db backups` lists them)."]
    assert table_hashes(conn) == before and not safety_backups(settings.backup_dir)


def insert_two_tenants_rest(conn: psycopg.Connection) -> None:
    from support.tenants import GLOBEX_SQL, sync_sequences

    conn.execute(GLOBEX_SQL)
    sync_sequences(conn)


def test_a_tenant_backup_restored_under_another_tenants_name_is_refused(
        run_cli, settings: Settings, conn, two_tenants):
    made = backup(settings, tenant="Globex")
    before = table_hashes(conn)

    code, err = one_line(run_cli("restore", made.path.name, "--tenant", "SysTech"))

    assert code == 2
    assert err == [f"❌ {made.path.name} is a backup of tenant Globex (id 3), not of 'SysTech'; "
                   "nothing was changed",
                   f"💡 Restore it as that tenant (`tasklets-db restore {made.path.name} "
                   "--tenant 3`); to load its rows as another tenant: `tasklets-db restore "
                   f"{made.path.name} --tenant SysTech --new-ids --rename NEW`."]
    assert table_hashes(conn) == before


def test_id_collisions_with_other_tenants_list_the_first_few_and_suggest_new_ids(
        run_cli, settings: Settings, conn, two_tenants):
    made = backup(settings, tenant="Globex")
    # Globex is removed, then SysTech's new rows take some of Globex's ids
    conn.execute("DELETE FROM tenants WHERE id = 3")
    conn.execute("INSERT INTO tasks (id, tenant_id, product_id, title) VALUES "
                 "(5, 1, 1, 'took 5'), (15, 1, 1, 'took 15')")
    conn.execute("INSERT INTO comments (id, tenant_id, task_id, body) VALUES (2, 1, 10, 'x')")
    before = table_hashes(conn)

    code, err = one_line(run_cli("restore", made.path.name, "--tenant", "Globex"))

    assert code == 1
    assert err[0] == ("❌ rows of tenant Globex (id 3) collide with rows outside it: tasks id=5, "
                      "tasks id=15, comments id=2; nothing was changed")
    assert "--new-ids" in err[1]
    assert table_hashes(conn) == before and not safety_backups(settings.backup_dir)
    dry = one_line(run_cli("restore", made.path.name, "--tenant", "Globex", "--dry-run"))
    assert dry[0] == code and dry[1][0] == err[0]  # the hint repeats the run: with --dry-run
    assert dry[1][1] == err[1].replace("Globex --new-ids", "Globex --dry-run --new-ids")
    # fresh ids, as suggested: loads next to them
    done = run_cli("restore", made.path.name, "--tenant", "Globex", "--new-ids")
    assert done.returncode == 0, done.stderr


def test_the_same_tenant_name_twice_needs_rename(run_cli, settings: Settings, conn,
                                                  two_tenants):
    made = backup(settings, tenant="Globex")
    before = table_hashes(conn)

    code, err = one_line(run_cli("restore", made.path.name, "--tenant", "Globex", "--new-ids"))

    assert (code, err) == (1, ["❌ a tenant named 'Globex' already exists here; nothing was "
                               "changed", "💡 Give the tenant another name: `tasklets-db "
                               f"restore {made.path.name} --tenant Globex --new-ids --rename "
                               "NEW`."])
    assert table_hashes(conn) == before


def test_options_that_do_not_go_together_are_usage_errors(run_cli, settings, conn,
                                                          two_tenants):
    made = backup(settings)
    partial = backup(settings, tables=["tenants", "tasks"])
    before = table_hashes(conn)

    for args, message in (
            (["--new-ids"], "--new-ids, --rename and --into-tenant go with --tenant"),
            (["--into-tenant", "1"], "--new-ids, --rename and --into-tenant go with --tenant"),
            (["--tenant", "Globex", "--new-ids", "--into-tenant", "1"],
             "--into-tenant names a tenant to replace; --new-ids adds one"),
            (["--tenant", "Globex", "--only-listed-tables"],
             "--only-listed-tables does not apply to --tenant")):
        code, err = one_line(run_cli("restore", made.path.name, *args))
        assert code == 2 and message in err[0]
    code, err = one_line(run_cli("restore", partial.path.name, "--tenant", "Globex"))
    assert code == 2 and "is a partial backup (only tenants, tasks)" in err[0]
    assert table_hashes(conn) == before


def test_restore_tenant_refuses_a_production_database_without_allow_production(
        run_cli, settings: Settings, conn, two_tenants):
    made = backup(settings, tenant="Globex")
    conn.execute("UPDATE ops_metadata SET value = 'production' WHERE key = 'environment'")
    change_both_tenants(conn)
    before = table_hashes(conn)

    code, err = one_line(run_cli("restore", made.path.name, "--tenant", "Globex"))

    assert code == 2 and err[0].startswith("❌ refusing to restore a tenant into a production "
                                           "database")
    assert table_hashes(conn) == before
    done = run_cli("restore", made.path.name, "--tenant", "Globex", "--allow-production")
    assert done.returncode == 0, done.stderr
