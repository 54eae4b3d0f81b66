import { describe, expect, it } from '@jest/globals';
import { parseCsiEndpoint } from './csi-endpoint.js';

describe('parseCsiEndpoint', () => {
  it('takes the spellings the kubelet and CSI sidecars use', () => {
    for (const e of ['unix:///run/csi/csi.sock', 'unix:/run/csi/csi.sock', '/run/csi/csi.sock']) {
      expect(parseCsiEndpoint(e)).toEqual({ address: 'unix:///run/csi/csi.sock', socketPath: '/run/csi/csi.sock' });
    }
  });

  it('refuses what is not an absolute Unix socket path', () => {
    for (const e of ['unix://run/csi.sock', 'csi.sock', 'localhost:10000', 'tcp://127.0.0.1:1']) {
      expect(() => parseCsiEndpoint(e)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });
});
