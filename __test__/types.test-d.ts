// Compile-time checks of the public types (`npm run typecheck` fails on a
// mismatch): an event union that loses or gains a variant, or an option that
// changes type, is a breaking change users would only see in their own build.
import type { ClientH3Event, ConnectOptions, CreateServerOptions, H3Event, ServeOptions, ServerH3Event } from 'tokio-quiche'

/** True only when A and B are the same type (not merely assignable). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
type Assert<T extends true> = T

type CoreEvents = 'settings' | 'newFlow' | 'resetStream' | 'connectionError' | 'connectionShutdown' | 'bodyBytesReceived' | 'streamClosed' | 'goAway'

export type Checks = [
  Assert<Equal<H3Event['type'], CoreEvents>>,
  Assert<Equal<ServerH3Event['type'], CoreEvents | 'headers' | 'malformedRequest'>>,
  Assert<Equal<ClientH3Event['type'], CoreEvents | 'headers' | 'newOutboundRequest'>>,
  Assert<Equal<Extract<ServerH3Event, { type: 'headers' }>['isInEarlyData'], boolean>>,
  Assert<Equal<Extract<H3Event, { type: 'bodyBytesReceived' }>['numBytes'], number>>,
  Assert<Equal<Extract<H3Event, { type: 'goAway' }>['id'], number>>,
  Assert<Equal<keyof ConnectOptions, 'serverName' | 'ca' | 'insecureSkipVerify' | 'clientCertificate' | 'serverPublicKey' | 'session' | 'settings' | 'http3' | 'signal'>>,
  Assert<Equal<ConnectOptions['serverName'], string | undefined>>,
  Assert<Equal<ConnectOptions['ca'], string | undefined>>,
  Assert<Equal<ConnectOptions['insecureSkipVerify'], boolean | undefined>>,
  Assert<Equal<ConnectOptions['serverPublicKey'], string | Uint8Array | undefined>>,
  Assert<Equal<ConnectOptions['session'], Uint8Array | undefined>>,
  Assert<Equal<ConnectOptions['signal'], AbortSignal | undefined>>,
  Assert<Equal<keyof ServeOptions, 'socket' | 'tls' | 'settings' | 'limits' | 'http3' | 'signal' | 'onError' | 'requestTimeoutMs'>>,
  Assert<Equal<ServeOptions['requestTimeoutMs'], number | undefined>>,
  Assert<Equal<keyof CreateServerOptions, 'tls' | 'settings' | 'limits' | 'http3' | 'requestTimeoutMs'>>,
  Assert<Equal<CreateServerOptions['requestTimeoutMs'], number | undefined>>,
  Assert<Equal<ServeOptions['signal'], AbortSignal | undefined>>,
  Assert<Equal<ServeOptions['onError'], ((error: unknown, request: Request) => void) | undefined>>,
]
