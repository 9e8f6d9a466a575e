"""Tables of exotic values that a backup must carry exactly: every type (incl. ones the
schema does not use yet, an enum, a generated column, colliding camelCase names), and JSON
nulls, json text and integers longer than Python parses by default. The backup tests and the
cross-version tests share them."""

from __future__ import annotations

TYPES_SQL = r"""
CREATE TYPE mood AS ENUM ('happy', 'sad ☹');
CREATE TABLE edge (
  id int PRIMARY KEY,
  ts timestamptz, d date, tm time, ttz timetz, iv interval,
  num numeric, money_like numeric(10,2), f8 float8, f4 real,
  jb jsonb, js json, tags text[], ints int[], grid int[],
  u uuid, b bytea, flag boolean, m mood, txt text,
  r text,               -- the subquery alias: row_to_json(r) would serialise this column
  tenant_id int, "tenantId" int,      -- camelCase collision: both must survive
  big numeric(40,0),
  shout int GENERATED ALWAYS AS (tenant_id * 100) STORED
);
INSERT INTO edge VALUES (
  1, '2024-01-08 14:30:45.123456+05:30', '2024-02-29', '23:59:59.999999', '14:30:00+02',
  '1 year 2 months 3 days 04:05:06.789',
  12345678901234567890.123456789012345678901234567890, 22.30, 0.1, 1.5,
  '{"a": {"b": [1, 2.50, "ü 😀"]}, "k": null, "q": "say \"hi\" \\ back"}',
  E'{"raw":\n 1,\t"s": "a\\nb"}',
  ARRAY['a', 'b "q"', NULL, 'c\d', 'é 😀'], '{1,-2,3}', '{{1,2},{3,4}}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\x00ff10', true, 'sad ☹',
  E'quote " backslash \\ newline \n tab \t cr \r emoji 😀 sep \u2028 end',
  'alias trap', 7, 8, 123456789012345678901234567890123456789
);
INSERT INTO edge (id, ts, d, iv, num, f8, f4, b, txt) VALUES
  (2, 'infinity', '0044-03-15 BC', '-1 day -00:00:01', 'NaN', 'NaN', 'Infinity',
   '', ''),
  (3, '-infinity', '-infinity', '0', 0, '-Infinity', '-0', NULL, NULL),
  (4, NULL, NULL, NULL, NULL, 1e308, NULL, NULL, NULL);
"""

HUGE_INT = "9" * 5000  # beyond Python's default int-parsing limit of 4300 digits

JSON_EDGES_SQL = f"""
CREATE TABLE edgy (
  id int PRIMARY KEY,
  must jsonb NOT NULL,
  maybe jsonb,
  plain json,
  many jsonb[],
  n numeric
);
INSERT INTO edgy VALUES
  (1, 'null', NULL, 'null', ARRAY['null'::jsonb, NULL, '{{"a": null}}'::jsonb], NULL),
  (2, '{{"k": null}}', 'null', NULL, NULL, {HUGE_INT}),
  (3, '[null]', NULL, '  null  ', ARRAY[NULL::jsonb], 1),
  (4, '{{"big": {HUGE_INT}}}', '0', '{{"x": 1}}', '{{}}', -{HUGE_INT}.5);
"""
