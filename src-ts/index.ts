/**
 * HTTP/3 and QUIC for Node.js on Cloudflare's tokio-quiche.
 *
 * The names mirror tokio-quiche: `listen()` yields `InitialQuicConnection`s,
 * `ServerH3Driver.new()` pairs a driver with its `ServerH3Controller`, and
 * `connect()` gives a `ClientH3Controller`.
 * @packageDocumentation
 */
import { logFromEnvironment } from './logging.js'

export { listen, QuicListener, InitialQuicConnection, ServerH3Driver, ServerH3Controller } from './server.js'
export type { ListenSocket, QuicConnection } from './server.js'
export { connect, ClientH3Controller, ClientRequestSender } from './client.js'
export type { BodyInit, ClientResponse, ConnectOptions, NewClientRequest, RequestInit } from './client.js'
export { H3Controller, H3_NO_ERROR } from './controller.js'
export type { CloseOptions, ConnectionStats, StreamShutdownOptions } from './controller.js'
export type { ClientH3Event, CloseInfo, H3Event, IncomingHeadersEvent, ServerH3Event } from './events.js'
export { DatagramFlow, QuicDatagrams } from './flows.js'
export { connectQuic, QuicStream, RawQuicConnection } from './raw.js'
export type { OpenStreamOptions, QuicConnectOptions } from './raw.js'
export { OutboundFrame, OutboundFrameSender, InboundFrameStream } from './frames.js'
export type { H3AuditStats, Header, HeadersInit, InboundFrame, Priority } from './frames.js'
export { ConnectionParams } from './params.js'
export type { ConnectionLimits, ServerParamsInit, ServerTlsOptions, TlsCertificatePaths } from './params.js'
export { Http3Settings } from './settings.js'
export type { Http3SettingsInit, QuicSettings } from './settings.js'
export { CertificateRejectedError, RequestRefusedError, TokioQuicheError, StreamResetError, StreamStoppedError } from './errors.js'
export type { CertificateVerifyError, ErrorCode } from './errors.js'
export { generateSelfSignedCertificate, writeSelfSignedCertificate } from './tls.js'
export type { SelfSignedCertificate, WrittenCertificate } from './tls.js'
export { features } from './features.js'
export type { Feature } from './features.js'
export { bridgeCounters, metricsSnapshot, parsePrometheusText, prometheusMetrics } from './metrics.js'
export type { BridgeCounters, MetricFamily, MetricSample } from './metrics.js'
export { serve } from './serve.js'
export { fetch, defaultAgent } from './fetch.js'
export type { FetchInit } from './fetch.js'
export { Agent } from './agent.js'
export type { AgentOptions, Lease } from './agent.js'
export { createServer, Http3Server, Http3ServerRequest, Http3ServerResponse } from './compat.js'
export type { AddressInfo } from './address.js'
export type { CreateServerOptions, PeerInfo, RequestListener } from './compat.js'
export { setLogger } from './logging.js'
export type { LogLevel, LogRecord } from './logging.js'
export type { FetchHandler, FetchServeOptions, RequestInfo, ServeOptions, Server } from './serve.js'

// TOKIO_QUICHE_LOG=<level>: logs to stderr without code changes.
logFromEnvironment()
