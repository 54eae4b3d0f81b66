import { BlockmirrorError, VolumeIoError } from '../errors.js';
import { Errno } from './nbd-constants.js';

/** Maps a data-path failure to the errno an NBD client receives. */
export function nbdErrnoOf(err: unknown): number {
  if (err instanceof VolumeIoError) {
    switch (err.errno) {
      case 'ENOSPC':
      case 'EDQUOT':
        return Errno.ENOSPC;
      case 'EROFS':
      case 'EPERM':
      case 'EACCES':
        return Errno.EPERM;
      default:
        return Errno.EIO;
    }
  }
  if (err instanceof BlockmirrorError) {
    switch (err.code) {
      case 'OUT_OF_RANGE':
      case 'INVALID_ARGUMENT':
        return Errno.EINVAL;
      case 'CLOSED':
        return Errno.ESHUTDOWN;
      default:
        return Errno.EIO;
    }
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC') return Errno.ENOSPC;
  return Errno.EIO;
}
