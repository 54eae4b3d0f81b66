/** The sidecar refuses for good (INVALID_ARGUMENT, FAILED_PRECONDITION). */
export function isRefusal(err: unknown): boolean {
  const code = (err as { grpcCode?: number }).grpcCode;
  return code === 3 || code === 9;
}
