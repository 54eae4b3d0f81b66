import { describe, expect, it } from '@jest/globals';
import { splitDevT } from './block-device.js';

describe('splitDevT', () => {
  it('decodes small and large major/minor numbers as glibc encodes them', () => {
    // makedev(7, 3): /dev/loop3
    expect(splitDevT((7 << 8) | 3)).toEqual({ major: 7, minor: 3 });
    // makedev(259, 1): minor below 256, major above 255
    expect(splitDevT((259 << 8) | 1)).toEqual({ major: 259, minor: 1 });
    // makedev(7, 300): the minor's high bits go above bit 20
    expect(splitDevT(((300 & ~0xff) << 12) | (7 << 8) | (300 & 0xff))).toEqual({ major: 7, minor: 300 });
  });
});
