"""Throwaway databases on the test server: the helpers conftest's fixtures use, for tests that
need a database of their own beside the fixtures' (tests import them from here)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


def with_dbname(url: str, dbname: str, user: str | None = None) -> str:
    """The same server URL with another database (and optionally another, passwordless user)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user:
        netloc = f"{user}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{dbname}"))


def admin(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def create_database(server_url: str, template: str | None, owner: str | None = None) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    if owner:
        query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    with admin(server_url) as conn:
        conn.execute(query)
    return name


def drop_database(server_url: str, name: str) -> None:
    with admin(server_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
