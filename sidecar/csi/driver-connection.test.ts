import { describe, expect, it } from '@jest/globals';
import { Metadata } from '@grpc/grpc-js';
import { forwardableMetadata } from './driver-connection.js';

describe('forwardableMetadata', () => {
  it("keeps the caller's own keys and drops what the transport sets again", () => {
    const md = new Metadata();
    md.set('x-csi-trace', 'abc');
    md.set('csi.requirepublish', 'yes');
    md.set('bin-bin', Buffer.from([1, 2]));
    md.set('user-agent', 'kubelet grpc-go/1.70');
    md.set('content-type', 'application/grpc');
    md.set('te', 'trailers');
    md.set('grpc-accept-encoding', 'gzip');
    const out = forwardableMetadata(md).getMap();
    expect(out).toEqual({ 'x-csi-trace': 'abc', 'csi.requirepublish': 'yes', 'bin-bin': Buffer.from([1, 2]) });
    // The caller's metadata itself is left alone.
    expect(md.get('user-agent')).toEqual(['kubelet grpc-go/1.70']);
  });
});
