// The servers under test, how to start one, and its stats channel
// (bench/routes.ts; crates/bench/src/server.rs for N).
import { join } from 'node:path'
import { TQ_BENCH } from './clients'
import { startProcess } from './proc'

export type SubjectId = 'N' | 'P' | 'S' | 'R' | 'H2' | 'H1' | 'C1' | 'C2'

export interface Subject {
  id: SubjectId
  label: string
  protocol: 'h3' | 'h2' | 'h1'
  command(address: string, cert: string, key: string): [string, string[]]
}

/** Node subjects: --expose-gc so the stats channel can report live heap only. */
const node = (script: string, ...args: string[]): [string, string[]] => [process.execPath, ['--expose-gc', '--import=tsx', join(__dirname, script), ...args]]

export const SUBJECTS: Record<SubjectId, Subject> = {
  N: { id: 'N', label: 'N (native tokio-quiche)', protocol: 'h3', command: (a, c, k) => [TQ_BENCH, ['server', a, c, k]] },
  P: { id: 'P', label: 'P (this package, controller API)', protocol: 'h3', command: (a, c, k) => node('server.ts', a, c, k, 'controller') },
  S: { id: 'S', label: 'S (this package, serve())', protocol: 'h3', command: (a, c, k) => node('server.ts', a, c, k, 'serve') },
  R: { id: 'R', label: 'R (this package, createServer())', protocol: 'h3', command: (a, c, k) => node('node-servers.ts', 'h3', a, c, k) },
  H2: { id: 'H2', label: "H2 (Node's http2.createSecureServer)", protocol: 'h2', command: (a, c, k) => node('node-servers.ts', 'h2', a, c, k) },
  H1: { id: 'H1', label: "H1 (Node's https.createServer)", protocol: 'h1', command: (a, c, k) => node('node-servers.ts', 'h1', a, c, k) },
  C1: { id: 'C1', label: 'C1 (P under node:cluster, 1 worker)', protocol: 'h3', command: (a, c, k) => node('cluster-server.ts', a, c, k, '1') },
  C2: { id: 'C2', label: 'C2 (P under node:cluster, 2 workers)', protocol: 'h3', command: (a, c, k) => node('cluster-server.ts', a, c, k, '2') },
}

export interface ServerStats {
  /** Request-body bytes received so far. */
  uploaded: number
  /** Live JS heap (Node subjects only). */
  heapUsed?: number
  /** JS↔Rust crossings so far (subjects P, S and R). */
  bridge?: { toRust: number; toJs: number }
}

export interface RunningServer {
  pid: number
  address: string
  stats(): Promise<ServerStats>
  stop(): void
}

export async function startServer(subject: Subject, cert: string, key: string): Promise<RunningServer> {
  const [cmd, args] = subject.command('127.0.0.1:0', cert, key)
  const { child, lines, line } = await startProcess(cmd, args, (l) => l.startsWith('listening '))
  return {
    pid: child.pid!,
    address: line.slice('listening '.length),
    stats: () =>
      new Promise((resolve) => {
        const onLine = (l: string) => {
          if (!l.startsWith('stats ')) return
          lines.off('line', onLine)
          resolve(JSON.parse(l.slice(6)) as ServerStats)
        }
        lines.on('line', onLine)
        child.stdin!.write('stats\n')
      }),
    stop: () => child.kill('SIGKILL'),
  }
}
