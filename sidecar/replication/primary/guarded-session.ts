import type { Logger } from 'winston';
import type { HandshakeResponse__Output } from '../../../proto/gen/blockmirror/replication/v1/HandshakeResponse.js';

/**
 * A replicator's onSession. A session whose start fails (its blocks cannot be recorded on
 * the state disk) ships nothing: it is dropped, for the next one to try again, never
 * left as an unhandled rejection that would end the sidecar.
 */
export function guardedSession(start: (s: HandshakeResponse__Output | null) => Promise<void>, drop: (reason: string) => void, logger: Logger): (s: HandshakeResponse__Output | null) => void {
  return (s) =>
    void start(s).catch((err: Error) => {
      logger.warn('could not start the session; dropping it', { error: err.message });
      drop(`starting the session failed: ${err.message}`);
    });
}
