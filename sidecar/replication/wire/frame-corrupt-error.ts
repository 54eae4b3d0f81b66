import { BlockmirrorError } from '../../errors.js';

/** A received frame fails its crc, its runs do not match its payload, or a run lies outside the volume. */
export class FrameCorruptError extends BlockmirrorError {
  constructor(message: string) {
    super('FRAME_CORRUPT', message);
    this.name = 'FrameCorruptError';
  }
}
