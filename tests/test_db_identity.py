"""Databases are told apart by what the server says, not by the URL's text."""

from __future__ import annotations

import psycopg

from ops.core.db import DatabaseIdentity, database_identity


def _identity(url: str) -> DatabaseIdentity:
    with psycopg.connect(url) as conn:
        return database_identity(conn)


def test_one_database_reached_through_two_host_aliases_is_the_same(db_url: str) -> None:
    # the throwaway cluster listens on 127.0.0.1; "localhost" resolves to it as well
    alias = db_url.replace("127.0.0.1", "localhost")
    assert alias != db_url
    first, second = _identity(db_url), _identity(alias)
    assert first.same_database(second)
    assert first.system_identifier and first.system_identifier.isdigit()


def test_two_databases_of_one_server_differ(db_url: str, other_db_url: str) -> None:
    first, second = _identity(db_url), _identity(other_db_url)
    assert first.system_identifier == second.system_identifier
    assert not first.same_database(second)


def test_identity_survives_a_round_trip_through_meta(db_url: str) -> None:
    identity = _identity(db_url)
    assert DatabaseIdentity.from_meta(identity.as_meta()) == identity
    assert DatabaseIdentity.from_meta({"databaseOid": "1", "database": "x"}) is None
    assert DatabaseIdentity.from_meta(None) is None


def test_another_cluster_with_the_same_oid_and_name_differs() -> None:
    here = DatabaseIdentity("1", 16384, "tasklets")
    assert not here.same_database(DatabaseIdentity("2", 16384, "tasklets"))
    assert here.same_database(DatabaseIdentity(None, 16384, "tasklets"))
