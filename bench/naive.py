"""The seed tool's way of backing up, as a baseline: SELECT * per table, every row in memory,
one json.dumps. Usage: python -m bench.naive DATABASE_URL OUT.json"""

from __future__ import annotations

import json
import sys

import psycopg
from psycopg.rows import dict_row


def main() -> None:
    url, out = sys.argv[1], sys.argv[2]
    tables: dict[str, list[dict]] = {}
    with psycopg.connect(url, row_factory=dict_row) as conn:
        names = [r["tablename"] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename NOT IN ('alembic_version', 'ops_metadata') ORDER BY 1")]
        for name in names:
            tables[name] = conn.execute(f'SELECT * FROM "{name}"').fetchall()
    with open(out, "w") as fh:
        fh.write(json.dumps({"version": "1.0", "tables": tables}, default=str))


if __name__ == "__main__":
    main()
