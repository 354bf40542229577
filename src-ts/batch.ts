// A batch of events as the binding sends it, flattened (see
// crates/core/src/batch.rs for why and for the layout), and its decoding
// into one plain object per event.
import type { CloseInfo } from './events.js'
import type { ExternalObject, NativeBodyReader, NativeBodyWriter, NativeDatagramFlow } from './native.js'

/**
 * What the event callback receives. The batch's numbers are
 * `nums[start..end]`; `nums` may be shared with other batches and reused
 * once the callback returns, so it is decoded at once and never kept.
 */
export type EventBatch = [nums: Float64Array, refs: unknown[], audit: ExternalObject<'AuditBatch'> | undefined, start: number, end: number]

/** One event from the binding; `kind` says which fields are set. */
export interface RawH3Event {
  kind: string
  streamId?: number
  readFin?: boolean
  isInEarlyData?: boolean
  numBytes?: number
  fin?: boolean
  /** GOAWAY id, a `newFlow`'s flow id, or a `stopSending`'s error code. */
  id?: number
  requestId?: number
  /** Where a bodiless request's `H3AuditStats` is in the batch's `audit`. */
  auditIndex?: number
  /** Latin1 `name\0value\0...`, or the flat `[name, value, ...]` list when a value holds a NUL. */
  headers?: string | string[]
  send?: NativeBodyWriter
  recv?: NativeBodyReader
  flow?: NativeDatagramFlow
  /** Raw RFC 9218 priority field value from PRIORITY_UPDATE (server only). */
  priority?: string
  /** Flat `[id, value, ...]` SETTINGS pairs. */
  settings?: bigint[]
  /** Text of a connection error or shutdown reason. */
  error?: string
  close?: CloseInfo
  /** Body bytes that came with the HEADERS: all of them (FIN included) without `recv`, the first chunk with it. */
  body?: Buffer
}

/** By index, in the order of `Kind` in batch.rs (a cargo test checks it). */
const KINDS = [
  'settings',
  'headers',
  'newFlow',
  'resetStream',
  'connectionError',
  'connectionShutdown',
  'bodyBytesReceived',
  'streamClosed',
  'goAway',
  'newOutboundRequest',
  'malformedRequest',
  'closed',
  'established',
  'newStream',
  'stopSending',
]

/** Turns a flat batch back into events, in order. */
export function decodeBatch([nums, refs, , start, end]: EventBatch): RawH3Event[] {
  const events: RawH3Event[] = []
  let n = start
  let r = 0
  while (n < end) {
    const kind = KINDS[nums[n++]!]!
    const mask = nums[n++]!
    // One object shape for every event keeps the code reading them monomorphic.
    const raw: RawH3Event = {
      kind,
      streamId: mask & 1 ? nums[n++] : undefined,
      readFin: mask & 2 ? nums[n++] === 1 : undefined,
      isInEarlyData: mask & 4 ? nums[n++] === 1 : undefined,
      numBytes: mask & 8 ? nums[n++] : undefined,
      fin: mask & 16 ? nums[n++] === 1 : undefined,
      id: mask & 32 ? nums[n++] : undefined,
      requestId: mask & 64 ? nums[n++] : undefined,
      auditIndex: mask & 128 ? nums[n++] : undefined,
      headers: mask & 256 ? (refs[r++] as string | string[]) : undefined,
      send: mask & 512 ? (refs[r++] as NativeBodyWriter) : undefined,
      recv: mask & 1024 ? (refs[r++] as NativeBodyReader) : undefined,
      flow: mask & 2048 ? (refs[r++] as NativeDatagramFlow) : undefined,
      priority: mask & 4096 ? (refs[r++] as string) : undefined,
      settings: mask & 8192 ? (refs[r++] as bigint[]) : undefined,
      error: mask & 16384 ? (refs[r++] as string) : undefined,
      close: mask & 32768 ? closeInfo(nums, n, (refs[r++] as string | null) ?? undefined) : undefined,
      body: mask & 65536 ? (refs[r++] as Buffer) : undefined,
    }
    if (mask & 32768) n += 7
    events.push(raw)
  }
  return events
}

/** A close info from its 7 numbers at `nums[n]` (batch.rs, `close_numbers`) and its reason. */
function closeInfo(nums: Float64Array, n: number, reason: string | undefined): CloseInfo {
  const codes = [0, 1, 2, 3].map((i) => (Number.isNaN(nums[n + i]) ? undefined : nums[n + i]))
  const [localTransportCode, localApplicationCode, peerTransportCode, peerApplicationCode] = codes
  return {
    localTransportCode,
    localApplicationCode,
    peerTransportCode,
    peerApplicationCode,
    reason,
    sentBytes: nums[n + 4]!,
    recvBytes: nums[n + 5]!,
    lostPackets: nums[n + 6]!,
    timedOut: codes.every((code) => code === undefined) && reason === undefined,
  }
}
