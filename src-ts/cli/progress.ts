/** A one-line progress bar on a TTY stream, redrawn at most every 100 ms. */
export class ProgressBar {
  #received = 0
  #lastDraw = 0
  readonly #started = Date.now()

  constructor(
    private readonly out: NodeJS.WriteStream,
    /** From content-length; undefined shows bytes and rate only. */
    private readonly total: number | undefined,
  ) {}

  add(bytes: number): void {
    this.#received += bytes
    const now = Date.now()
    if (now - this.#lastDraw >= 100) this.#draw(now)
  }

  /** Draws the final state and moves to the next line. */
  finish(): void {
    this.#draw(Date.now())
    this.out.write('\n')
  }

  #draw(now: number): void {
    this.#lastDraw = now
    const seconds = Math.max((now - this.#started) / 1000, 0.001)
    const rate = `${formatBytes(this.#received / seconds)}/s`
    let line: string
    if (this.total) {
      const share = Math.min(this.#received / this.total, 1)
      const width = 30
      const filled = Math.round(share * width)
      line = `[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${(share * 100).toFixed(0).padStart(3)}% ${formatBytes(this.#received)} ${rate}`
    } else {
      line = `${formatBytes(this.#received)} ${rate}`
    }
    this.out.write(`\r${line}\x1b[K`)
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}
