// Whether GSO and GRO were in play, measured: the kernel's UDP counters
// (/proc/net/snmp, whole network namespace) over a run. A send with GSO is
// one datagram however many packets it carries; a GRO receive likewise.
import { readFileSync } from 'node:fs'

export interface UdpCounters {
  out: number
  in: number
  rcvbufErrors: number
}

export function udpCounters(): UdpCounters {
  const [names, values] = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp: '))
    .map((l) => l.split(/\s+/).slice(1))
  const get = (name: string) => Number(values![names!.indexOf(name)])
  return { out: get('OutDatagrams'), in: get('InDatagrams'), rcvbufErrors: get('RcvbufErrors') }
}

export function udpDelta(before: UdpCounters): UdpCounters {
  const now = udpCounters()
  return { out: now.out - before.out, in: now.in - before.in, rcvbufErrors: now.rcvbufErrors - before.rcvbufErrors }
}

/** 1 MiB in 1350-byte QUIC packets, one datagram each: what no GSO/GRO looks like. */
export const DATAGRAMS_PER_MIB_WITHOUT = Math.ceil((1024 * 1024) / 1350)
