import { Client, credentials, Metadata, type CallOptions, type Deadline, type ServiceError } from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import { DriverCallError } from './csi-status.js';

const identity = (b: Buffer): Buffer => b;

export interface DriverCallOptions {
  metadata?: Metadata;
  /** The caller's deadline, passed on as is (none when undefined or infinite). */
  deadline?: Deadline;
  /** Cancels the call (the caller went away). */
  signal?: AbortSignal;
}

// Set by HTTP/2 and grpc-js on every call: forwarding the caller's copies would send them twice.
const TRANSPORT_KEYS = new Set(['user-agent', 'content-type', 'te', 'host', 'authority']);

/** The caller's metadata minus what the transport sets itself. */
export function forwardableMetadata(md: Metadata): Metadata {
  const out = md.clone();
  for (const key of Object.keys(out.getMap())) if (key.startsWith(':') || key.startsWith('grpc-') || TRANSPORT_KEYS.has(key)) out.remove(key);
  return out;
}

/** A connection to the CSI driver's own socket, for raw (pass-through) and typed calls. */
export class DriverConnection {
  readonly #client: Client;

  constructor(address: string) {
    this.#client = new Client(address, credentials.createInsecure());
  }

  /** One unary call with the request already encoded; the response bytes as the driver sent them. */
  raw(path: string, request: Buffer, opts: DriverCallOptions = {}): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const callOpts: CallOptions = {};
      if (opts.deadline !== undefined && opts.deadline !== Infinity) callOpts.deadline = opts.deadline;
      const onAbort = (): void => call.cancel();
      const call = this.#client.makeUnaryRequest(path, identity, identity, request, opts.metadata ?? new Metadata(), callOpts, (err: ServiceError | null, res?: Buffer) => {
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(new DriverCallError(path, err));
        else resolve(res ?? Buffer.alloc(0));
      });
      if (opts.signal?.aborted) call.cancel();
      else opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A typed call through the loaded proto's method definition (its path and codecs). */
  async call<Req, Res, ReqOut, ResOut>(method: MethodDefinition<Req, Res, ReqOut, ResOut>, request: NoInfer<Req>, opts: DriverCallOptions = {}): Promise<ResOut> {
    return method.responseDeserialize(await this.raw(method.path, method.requestSerialize(request), opts));
  }

  close(): void {
    this.#client.close();
  }
}
