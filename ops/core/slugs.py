"""Tenant slugs: the URL-safe, unique short name of a tenant, made from its name.

The same rule as migration 0002's backfill: accents folded to ASCII, lower case, every run of
other characters one hyphen, at most 50 characters, `tenant` when nothing is left; a slug
already taken gets the next free `-2`, `-3`, ...
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import psycopg

SLUG_PATTERN = "^[a-z0-9]+(-[a-z0-9]+)*$"  # the schema's check constraint
MAX_BASE_LENGTH = 50  # leaves room for a suffix within a readable URL segment
FALLBACK = "tenant"


def slugify(name: str) -> str:
    """The slug `name` gives before any collision is settled."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return base[:MAX_BASE_LENGTH].strip("-") or FALLBACK


def first_free(base: str, taken: Iterable[str]) -> str:
    """`base`, or `base-N` with the smallest N >= 2 that is not in `taken`."""
    used = set(taken)
    candidate, n = base, 1
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def free_slug(conn: psycopg.Connection, base: str) -> str:
    """`base`, or the next free `base-N`, among the tenants in the database."""
    taken = conn.execute(
        "SELECT slug FROM tenants WHERE slug = %s OR slug ~ ('^' || %s || '-[0-9]+$')",
        (base, base)).fetchall()
    return first_free(base, (slug for slug, in taken))
