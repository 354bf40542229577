// The generated napi-rs loader. Everything it exports is internal; the
// modules beside this one build the public API on it.
import type * as NativeBinding from '../index.js'

export type {
  ExternalObject,
  NativeBodyReader,
  NativeBodyWriter,
  NativeConnectOptions,
  NativeConnectionLimits,
  NativeConnectionStats,
  NativeDatagramFlow,
  NativeH3Controller,
  NativeH3AuditStats,
  NativeHttp3Settings,
  NativeInboundChunk,
  NativeInitialConnection,
  NativeQuicListener,
  NativeQuicSettings,
  NativeRawStream,
  NativeServerH3Driver,
  NativeServerTls,
} from '../index.js'

/**
 * The npm package holding the prebuilt addon for this platform, named the way
 * `napi.targets` names them (`tokio-quiche-linux-x64-gnu`, `-darwin-arm64`,
 * `-win32-x64-msvc`, ...).
 */
export function platformPackageName(): string {
  const { platform, arch } = process
  let abi = ''
  if (platform === 'linux') {
    // glibcVersionRuntime is only reported by a glibc build of Node.
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    abi = header?.glibcVersionRuntime ? '-gnu' : '-musl'
  } else if (platform === 'win32') {
    abi = '-msvc'
  }
  return `tokio-quiche-${platform}-${arch}${abi}`
}

// The generated loader's own error ("Cannot find native binding", then npm
// advice) names neither the package nor the platform; say both once.
function loadNative(): typeof NativeBinding {
  try {
    return require('../index.js') as typeof NativeBinding
  } catch (err) {
    const pkg = platformPackageName()
    throw new Error(
      `tokio-quiche: no prebuilt addon for ${process.platform}-${process.arch}; install the platform package: npm install ${pkg}`,
      { cause: err },
    )
  }
}

const native = loadNative()
export default native
