// Run by the openclaw plugin inside the sandbox (`node - MODE DB`, script on
// stdin, as the owner of <state>/state/openclaw.sqlite) to observe, and when
// told to, release the gateway owner lease of OpenClaw 2026.9
// (docs/openclaw-lease.md). Node 24's built-in node:sqlite; no other module.
//   argv MODE           observe | reclaim
//   argv DB             <state>/state/openclaw.sqlite
//   RUNNER_LEASE_DIRS   ':'-separated parents of the openclaw-<uid>/ and
//                       openclaw-state-locks-<uid>/ coordinator directories
//   RUNNER_LEASE_EXPECT (reclaim) the row judged stale, as printed by observe
// Output: one JSON line on stdout. observe never writes (read-only opens);
// reclaim deletes at most the one judged row, inside BEGIN IMMEDIATE, and only
// while every gateway coordinator is still free and the row is unchanged.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { DatabaseSync } = require('node:sqlite');

const env = process.env;
const [mode, dbPath] = process.argv.slice(2);
const SCOPE = 'gateway-owner';
const KEY = 'global';
const out = (v) => process.stdout.write(JSON.stringify(v) + '\n');

// Every gateway coordinator (`gateway*.lock.sqlite`) in the openclaw-<uid>/
// and openclaw-state-locks-<uid>/ directories: a live gateway holds it with
// BEGIN EXCLUSIVE (an fcntl write lock on the SQLite lock bytes) for its whole
// life, so a read here fails with SQLITE_BUSY. The kernel keeps that lock for
// a live owner in any container sharing the volume, even a frozen one.
function coordinators() {
  const found = [];
  for (const parent of (env.RUNNER_LEASE_DIRS || '').split(':').filter(Boolean)) {
    let dirs;
    try {
      dirs = fs.readdirSync(parent);
    } catch (e) {
      if (e.code === 'ENOENT') continue;
      throw e;
    }
    dirs = dirs.filter((d) => /^openclaw-(state-locks-)?[0-9]+$/.test(d)).slice(0, 64);
    for (const d of dirs) {
      const dir = path.join(parent, d);
      if (!fs.lstatSync(dir).isDirectory()) continue;
      for (const f of fs.readdirSync(dir).filter((n) => /^gateway.*\.lock\.sqlite$/.test(n)).slice(0, 128)) {
        const p = path.join(dir, f);
        if (!fs.lstatSync(p).isFile()) continue;
        found.push({ path: p, held: held(p) });
      }
    }
  }
  return found;
}

// observe runs while runner probes, where the sandbox's filesystem is
// read-only to it. SQLite then cannot create the -shm of a WAL database and
// fails to open it. With no -wal file beside it no connection is open (a
// WAL connection keeps its -wal until the last one closes) and nothing is
// left unmerged, so the file alone is the database: `immutable` reads it
// without the -shm. With a -wal, the existing -shm is used read-only.
const CANNOT_OPEN = /unable to open database file/i;

function unopenedWithoutWal(p, e) {
  return CANNOT_OPEN.test(String(e && e.message)) && !fs.existsSync(`${p}-wal`);
}

function openReadOnly(p, timeout) {
  let db;
  try {
    db = new DatabaseSync(p, { readOnly: true, timeout });
    db.prepare('SELECT count(*) AS n FROM sqlite_schema').get();
    return db;
  } catch (e) {
    if (db && db.isOpen) db.close();
    if (!unopenedWithoutWal(p, e)) throw e;
    const uri = new URL('file:');
    uri.pathname = p;
    uri.searchParams.set('immutable', '1');
    return new DatabaseSync(uri, { readOnly: true });
  }
}

function held(p) {
  let db;
  try {
    db = new DatabaseSync(p, { readOnly: true, timeout: 0 });
    db.prepare('SELECT count(*) AS n FROM sqlite_schema').get();
    return false;
  } catch (e) {
    if (/locked|busy/i.test(String(e && e.message))) return true;
    // No -wal: no connection has it open, so nobody holds it.
    if (unopenedWithoutWal(p, e)) return false;
    throw new Error(`cannot test coordinator ${p}: ${e && e.message}`);
  } finally {
    if (db && db.isOpen) db.close();
  }
}

function readLease(db) {
  const t = db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table' AND name = 'state_leases'").get();
  if (!t.n) return { table: false, row: null };
  const row = db
    .prepare(
      'SELECT owner, expires_at, heartbeat_at, payload_json, created_at, updated_at FROM state_leases ' +
        'WHERE scope = ? AND lease_key = ?',
    )
    .get(SCOPE, KEY);
  return { table: true, row: row ? { ...row } : null };
}

function facts() {
  // Read together, so the sandbox's start (pid 1) converts to wall time.
  const base = {
    hostname: os.hostname(),
    now_ms: Date.now(),
    uptime: fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0],
  };
  if (!fs.existsSync(dbPath)) return { ...base, db: false, table: false, row: null, coordinators: coordinators() };
  const db = openReadOnly(dbPath, 2000);
  try {
    return { ...base, db: true, ...readLease(db), coordinators: coordinators() };
  } finally {
    db.close();
  }
}

function same(a, b) {
  return ['owner', 'expires_at', 'heartbeat_at', 'payload_json', 'created_at', 'updated_at'].every(
    (k) => (a[k] ?? null) === (b[k] ?? null),
  );
}

function reclaim() {
  const expect = JSON.parse(env.RUNNER_LEASE_EXPECT);
  const db = new DatabaseSync(dbPath, { timeout: 3000 });
  try {
    db.exec('BEGIN IMMEDIATE');
    try {
      const { row } = readLease(db);
      if (!row) {
        db.exec('ROLLBACK');
        return { result: 'absent' };
      }
      if (!same(row, expect)) {
        db.exec('ROLLBACK');
        return { result: 'changed', row };
      }
      // Checked again while the write lock keeps any gateway from writing a lease.
      const busy = coordinators().filter((c) => c.held);
      if (busy.length) {
        db.exec('ROLLBACK');
        return { result: 'held', coordinators: busy };
      }
      const r = db
        .prepare(
          'DELETE FROM state_leases WHERE scope = ? AND lease_key = ? AND owner = ? AND expires_at IS ? ' +
            'AND heartbeat_at IS ? AND updated_at = ?',
        )
        .run(SCOPE, KEY, expect.owner, expect.expires_at ?? null, expect.heartbeat_at ?? null, expect.updated_at);
      if (Number(r.changes) !== 1) {
        db.exec('ROLLBACK');
        return { result: 'changed', changes: Number(r.changes) };
      }
      db.exec('COMMIT');
      return { result: 'deleted', owner: expect.owner };
    } catch (e) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw e;
    }
  } finally {
    db.close();
  }
}

try {
  if (mode !== 'observe' && mode !== 'reclaim') throw new Error(`unknown mode ${mode}`);
  out(mode === 'reclaim' ? reclaim() : facts());
} catch (e) {
  out({ error: String((e && e.message) || e) });
  process.exitCode = 1;
}
