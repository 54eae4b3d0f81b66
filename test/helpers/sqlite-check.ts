import { runOk } from './run-cli.js';

export interface DatabaseCheck {
  /** SQLite's `pragma integrity_check`: 'ok' for a sound database. */
  integrity: string;
  rows: number;
  /** The highest committed sequence number (examples/database/sqlite-writer.mjs). */
  maxSeq: number;
}

/**
 * Opens the writer's database with the host's SQLite (Python's module, another
 * implementation than the writer's, applying the WAL as a restarted database would) and
 * answers its integrity check, row count and highest sequence number.
 */
export async function checkDatabase(path: string): Promise<DatabaseCheck> {
  const py =
    "import sqlite3, sys, json; c = sqlite3.connect(sys.argv[1]); r = c.execute('select count(*), coalesce(max(seq), 0) from tx').fetchone(); " +
    "print(json.dumps({'integrity': c.execute('pragma integrity_check').fetchone()[0], 'rows': r[0], 'maxSeq': r[1]})); c.close()";
  return JSON.parse(await runOk('python3', ['-c', py, path])) as DatabaseCheck;
}

/**
 * Commits `n` more transactions into the writer's database, one per commit (WAL,
 * synchronous=FULL, as the writer does), with the host's SQLite: what an application
 * on a side with no pod of its own writes. Answers the last sequence number.
 */
export async function commitRows(path: string, n: number): Promise<number> {
  const py =
    'import sqlite3, sys, os, datetime\n' +
    'c = sqlite3.connect(sys.argv[1], isolation_level=None)\n' +
    "c.execute('pragma journal_mode=wal'); c.execute('pragma synchronous=full')\n" +
    "s = c.execute('select coalesce(max(seq), 0) from tx').fetchone()[0]\n" +
    'for i in range(int(sys.argv[2])):\n' +
    '    s += 1\n' +
    "    c.execute('insert into tx (seq, at, payload) values (?, ?, ?)', (s, datetime.datetime.now(datetime.timezone.utc).isoformat(), os.urandom(4096)))\n" +
    'c.close()\n' +
    'print(s)\n';
  return Number((await runOk('python3', ['-c', py, path, String(n)])).trim());
}
