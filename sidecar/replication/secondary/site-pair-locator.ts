/**
 * Which sidecar of this sidecar's site holds a secondary pair. A primary dials a site's
 * entry point (a Service, any node); the sidecar it reaches answers a handshake for a
 * pair held elsewhere with a redirect to the holder's advertised peer address.
 */
export interface SitePairLocator {
  /**
   * The advertised peer address (host:port) of the other sidecar of this site that
   * holds `pairId` as a secondary; undefined when none does. Rejects when the site's
   * registrations cannot be read (the API server is down).
   */
  holderOf(pairId: string): Promise<string | undefined>;
}
