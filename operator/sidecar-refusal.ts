/**
 * The sidecar refuses for good (INVALID_ARGUMENT, FAILED_PRECONDITION), or until its
 * configuration changes (PERMISSION_DENIED: a volume path its flags do not allow).
 */
export function isRefusal(err: unknown): boolean {
  const code = (err as { grpcCode?: number }).grpcCode;
  return code === 3 || code === 7 || code === 9;
}
