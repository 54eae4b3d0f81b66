import type { ServerInterceptingCallInterface } from '@grpc/grpc-js';

/** What a server call knows of its connection's TLS (grpc-js does not export the type). */
export type AuthContext = ReturnType<ServerInterceptingCallInterface['getAuthContext']>;
