import { ServerInterceptingCall, status as GrpcStatus, type ServerInterceptor } from '@grpc/grpc-js';
import type { Logger } from 'winston';
import type { AuthContext } from './auth-context.js';
import { sanIdentities } from './identity.js';

/**
 * Why a caller may not use the control API, or undefined when it may. A call without TLS
 * came over the root-only Unix socket or a loopback listener (the sidecar refuses a
 * plaintext listener anywhere else): a local admin, admitted. Over TLS only the operator
 * identity is admitted: a CA signature alone is no authorization, since the same CA may
 * sign the peer link's certificates (and the remote site's). A certificate carrying several
 * identities is refused everywhere: one issued for every role would be the old skeleton key.
 */
export function controlRefusal(auth: AuthContext, operatorIdentity: string): string | undefined {
  if (auth.transportSecurityType !== 'ssl') return undefined;
  const ids = sanIdentities(auth.sslPeerCertificate?.subjectaltname);
  if (ids.length === 1 && ids[0]!.uri === operatorIdentity) return undefined;
  const who =
    ids.length === 0
      ? `a certificate without a blockmirror identity (subject ${JSON.stringify(auth.sslPeerCertificate?.subject?.CN ?? '')})`
      : `${ids.map((id) => id.uri).join(', ')}${ids.length > 1 ? ' (a certificate must carry one identity)' : ''}`;
  return `the control API admits only the operator (${operatorIdentity}) and local callers on the control socket; the caller is ${who}`;
}

/** Every RPC of the server it is installed on (health included) goes through controlRefusal. */
export function controlAuthorizer(operatorIdentity: string, opts: { logger: Logger; onRefused?: () => void }): ServerInterceptor {
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            const refusal = controlRefusal(call.getAuthContext(), operatorIdentity);
            if (refusal === undefined) return mdNext(metadata);
            opts.logger.warn('control call refused', { method: method.path, peer: call.getPeer(), error: refusal });
            opts.onRefused?.();
            call.sendStatus({ code: GrpcStatus.PERMISSION_DENIED, details: refusal });
          },
        });
      },
    });
}
