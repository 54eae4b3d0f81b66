import { afterEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, transports } from 'winston';
import { InvalidArgumentError } from '../errors.js';
import { PairManager } from './pair-manager.js';

const logger = createLogger({ silent: true, transports: [new transports.Console()] });

describe('PairManager: NBD sockets named by the operator', () => {
  let dir = '';
  let pairs: PairManager | undefined;
  afterEach(async () => {
    await pairs?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('places a bare socket name in the run directory only root can enter, and refuses paths in disguise', async () => {
    dir = await mkdtemp(join(tmpdir(), 'bm-pairs-'));
    const volume = join(dir, 'vol.img');
    await writeFile(volume, '');
    await truncate(volume, 4 << 20);
    pairs = new PairManager({ stateDir: join(dir, 'state'), logger });
    await pairs.start();
    const p = await pairs.create({ name: 'apps.db', volumePath: volume, role: 'primary', nbdSocket: 'apps.db.sock' });
    const run = join(dir, 'state', 'run');
    expect(p.nbdSocket).toBe(join(run, 'apps.db.sock'));
    expect((await stat(p.nbdSocket)).isSocket()).toBe(true);
    expect((await stat(run)).mode & 0o777).toBe(0o700);
    for (const bad of ['../x.sock', 'a/b.sock', '..', '.', 'x y']) {
      await expect(pairs.create({ name: 'other', volumePath: volume, role: 'primary', nbdSocket: bad })).rejects.toThrow(InvalidArgumentError);
    }
    expect(pairs.list().map((x) => x.name)).toEqual(['apps.db']);
  });
});
