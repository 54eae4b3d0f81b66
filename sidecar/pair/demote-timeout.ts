/** What DemotePair waits for shipping by default (a module of its own: the CLI shows it without loading the pair manager). */
export const DEFAULT_DEMOTE_TIMEOUT_MS = 60_000;
