import native from './native.js'

/** tokio-quiche's optional Cargo features. */
export type Feature = 'capture_keylogs' | 'gcongestion' | 'zero-copy' | 'rpk' | 'perf-quic-listener-metrics' | 'tokio-task-metrics'

/**
 * The features compiled into the loaded binary. The published binaries carry
 * `capture_keylogs` only; `npm run build -- --features gcongestion,...`
 * builds others (see docs/features.md).
 */
export const features: readonly Feature[] = Object.freeze(native.buildFeatures() as Feature[])
