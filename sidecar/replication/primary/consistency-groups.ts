import type { Logger } from 'winston';
import { InvalidArgumentError } from '../../errors.js';
import type { AsyncReplicator } from './async-replicator.js';
import { ConsistencyGroup } from './consistency-group.js';

export interface GroupSettings {
  /** The group's name; a pair alone uses its own name. */
  name: string;
  peer: string;
  intervalMs: number;
  maxCoordinationMs: number;
  maxDrainMs: number;
}

/** The consistency groups of one sidecar's async primaries, by name. */
export class ConsistencyGroups {
  readonly #logger: Logger;
  readonly #groups = new Map<string, { group: ConsistencyGroup; peer: string }>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Checks that a pair may join: every member of a group replicates to the same sidecar, which commits the group. */
  check(s: GroupSettings): void {
    const g = this.#groups.get(s.name);
    if (g && g.peer !== s.peer) {
      throw new InvalidArgumentError(`consistency group ${s.name} replicates to ${g.peer}; a member cannot use another peer (${s.peer})`);
    }
  }

  join(s: GroupSettings, r: AsyncReplicator): ConsistencyGroup {
    this.check(s);
    let g = this.#groups.get(s.name);
    if (!g) {
      // The first member's settings are the group's.
      g = {
        group: new ConsistencyGroup({ name: s.name, intervalMs: s.intervalMs, maxCoordinationMs: s.maxCoordinationMs, maxDrainMs: s.maxDrainMs, logger: this.#logger.child({ consistencyGroup: s.name }) }),
        peer: s.peer,
      };
      this.#groups.set(s.name, g);
    }
    g.group.add(r);
    return g.group;
  }

  leave(name: string, r: AsyncReplicator): void {
    const g = this.#groups.get(name);
    if (!g) return;
    g.group.remove(r);
    if (g.group.memberCount === 0) this.#groups.delete(name);
  }
}
