// The processes of a run: starting them, and their CPU and memory from /proc (Linux).
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { type Interface, createInterface } from 'node:readline'

function statFields(pid: number): string[] {
  // Fields after the command name, which may itself hold spaces and ')'.
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop()!.trim().split(/\s+/)
}

/** The ids of a process's children, grandchildren and so on. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    const child = Number(entry)
    if (!Number.isInteger(child)) continue
    try {
      const ppid = Number(statFields(child)[1])
      parents.set(ppid, [...(parents.get(ppid) ?? []), child])
    } catch {
      // exited while we looked
    }
  }
  const out: number[] = []
  for (let todo = [pid]; todo.length > 0; ) {
    const kids = parents.get(todo.pop()!) ?? []
    out.push(...kids)
    todo.push(...kids)
  }
  return out
}

/** User + system CPU seconds of a process and its live descendants (cluster workers). */
export function cpuSeconds(pid: number): number {
  let total = 0
  for (const p of [pid, ...descendants(pid)]) {
    try {
      const f = statFields(p)
      // utime and stime: fields 14 and 15 of stat (11 and 12 after the command name); 100 ticks/s.
      total += (Number(f[11]) + Number(f[12])) / 100
    } catch {
      // exited while we looked
    }
  }
  return total
}

/** Resident set size in bytes. */
export function rssBytes(pid: number): number {
  const kib = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB$/m)?.[1]
  return Number(kib) * 1024
}

export interface Started {
  child: ChildProcess
  /** Every stdout line after the first match, for a caller that talks to the process. */
  lines: Interface
  /** The first stdout line that `ready` accepted. */
  line: string
}

/** Starts a process and resolves once a line of its stdout passes `ready`; rejects if it exits first. */
export function startProcess(cmd: string, args: string[], ready: (line: string) => boolean, env?: NodeJS.ProcessEnv): Promise<Started> {
  const child = spawn(cmd, args, { cwd: join(__dirname, '..'), stdio: ['pipe', 'pipe', 'inherit'], ...(env ? { env } : {}) })
  const lines = createInterface({ input: child.stdout! })
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`${cmd} ${args.join(' ')} exited with ${code}`))
    child.once('exit', onExit)
    child.once('error', reject)
    const onLine = (line: string) => {
      if (!ready(line)) return
      lines.off('line', onLine)
      child.off('exit', onExit)
      resolve({ child, lines, line })
    }
    lines.on('line', onLine)
  })
}
