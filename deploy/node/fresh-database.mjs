// A fresh, migrated, seeded database per test for Node's test runner, from
// `tasklets-db testdb serve` (docs/guides/testdb.md). Copy it next to the app's tests:
//
//   import { test } from 'node:test';
//   import pg from 'pg';
//   import { freshDatabase } from './fresh-database.mjs';
//
//   test('creates a task', async (t) => {
//     const db = new pg.Client({ connectionString: await freshDatabase(t) });
//     await db.connect();
//     t.after(() => db.end());
//     // ... the database is this test's alone, dropped after it
//   });
//
// TESTDB_SERVER says where the server listens (default http://127.0.0.1:5010), TESTDB_TOKEN
// the token it wants (when it has one). Run as a script, it takes one database, prints its
// URL and gives it back (a smoke test of the connection to the server).

const server = (process.env.TESTDB_SERVER ?? 'http://127.0.0.1:5010').replace(/\/$/, '');
const headers = { 'content-type': 'application/json' };
if (process.env.TESTDB_TOKEN) headers.authorization = `Bearer ${process.env.TESTDB_TOKEN}`;

async function call(method, path, body) {
  const response = await fetch(server + path, { method, headers, body: body && JSON.stringify(body) });
  if (response.status === 204) return null;
  const payload = await response.json();
  if (!response.ok) throw new Error(`testdb: ${payload.error}${payload.hint ? ` (${payload.hint})` : ''}`);
  return payload;
}

// The URL of a database of the test's own; given back when the test `t` ends.
export async function freshDatabase(t, { template = null, wait = 60 } = {}) {
  const db = await call('POST', '/databases', { template, wait });
  t.after(() => call('DELETE', `/databases/${encodeURIComponent(db.name)}`));
  return db.url;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const ends = [];
  const url = await freshDatabase({ after: (fn) => ends.push(fn) });
  console.log(url);
  for (const end of ends) await end();
}
