// The generated napi-rs loader. Everything it exports is internal; the
// modules beside this one build the public API on it.
import * as native from '../index.js'

export type {
  ExternalObject,
  NativeBodyReader,
  NativeBodyWriter,
  NativeConnectionStats,
  NativeDatagramFlow,
  NativeH3Controller,
  NativeH3AuditStats,
  NativeHttp3Settings,
  NativeInboundChunk,
  NativeInitialConnection,
  NativeQuicListener,
  NativeQuicSettings,
  NativeServerH3Driver,
  NativeServerTls,
} from '../index.js'

export default native
