// A database that commits continuously, for the lab and the end-to-end test: SQLite (the
// node:sqlite module of Node 24, which the blockmirror images ship) in WAL mode with
// synchronous=FULL, so every commit is fsync'd before it returns. One row per transaction
// (a sequence number, the time, 4 KiB of random bytes); once a second it prints the last
// committed sequence number: every number printed must be found on the other site.
// SIGUSR1 holds the writes (the process stays, the database open) and prints the last
// committed number: what a secondary must hold exactly once it is in sync; another SIGUSR1
// lets them go on. SIGUSR2 switches between the given rate and as fast as the disk allows
// (for bench/database-tps.sh). SIGTERM stops.
//
// Usage: node sqlite-writer.mjs [DB_PATH] [COMMITS_PER_SECOND] [PRINT_EVERY_MS]
//   (defaults /data/db.sqlite, 20 (0: unthrottled), 1000; 0 prints every commit, which a
//   crash test needs to know the exact last acknowledged one)
import { randomBytes } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout } from 'node:timers';

const path = process.argv[2] ?? '/data/db.sqlite';
let rate = Number(process.argv[3] ?? 20) || Infinity;
const givenRate = rate;
const printEveryMs = Number(process.argv[4] ?? 1000);
const db = new DatabaseSync(path);
db.exec('PRAGMA journal_mode = WAL');
db.exec('PRAGMA synchronous = FULL');
db.exec('CREATE TABLE IF NOT EXISTS tx (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, payload BLOB NOT NULL)');
const insert = db.prepare('INSERT INTO tx (seq, at, payload) VALUES (?, ?, ?)');
let seq = Number(db.prepare('SELECT coalesce(max(seq), 0) AS n FROM tx').get().n);
console.log(`sqlite-writer: ${path}, resuming after ${seq}, ${rate} commits/s`);

let stopping = false;
let holding = false;
let lastPrinted = 0;
const stop = (signal) => {
  stopping = true;
  console.log(`stopping (${signal}): last committed ${seq}`);
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGUSR2', () => {
  rate = rate === Infinity ? givenRate : Infinity;
  console.log(`rate ${rate} commits/s after ${seq}`);
});
process.on('SIGUSR1', () => {
  holding = !holding;
  console.log(holding ? `holding: last committed ${seq}` : `going on after ${seq}`);
});

function tick() {
  if (stopping) {
    db.close();
    return;
  }
  if (holding) {
    setTimeout(tick, 500);
    return;
  }
  const started = Date.now();
  // Returns once the commit is durable (synchronous=FULL): an I/O error throws, and the
  // process exits non-zero, which the kubelet and the test both see.
  insert.run(seq + 1, new Date().toISOString(), randomBytes(4096));
  seq++;
  if (started - lastPrinted >= printEveryMs) {
    console.log(`committed ${seq} at ${new Date().toISOString()}`);
    lastPrinted = started;
  }
  setTimeout(tick, Math.max(0, 1000 / rate - (Date.now() - started)));
}
tick();
