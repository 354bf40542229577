import { createReadStream } from 'node:fs'
import { realpath, stat } from 'node:fs/promises'
import { extname, join, resolve, sep } from 'node:path'
import { Readable } from 'node:stream'
import type { FetchHandler } from '../serve.js'

/** Content types by extension; anything else is application/octet-stream. */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.xml': 'application/xml',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mp3': 'audio/mpeg',
}

export function contentType(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream'
}

/** A single `bytes=` range of a `size`-byte file: [start, end] inclusive, 'unsatisfiable', or undefined to send it whole. */
export function parseRange(header: string | null, size: number): [number, number] | 'unsatisfiable' | undefined {
  const match = header?.match(/^bytes=(\d*)-(\d*)$/)
  // Multiple ranges or other units: RFC 9110 lets a server ignore Range.
  if (!match || (match[1] === '' && match[2] === '')) return undefined
  let start: number
  let end: number
  if (match[1] === '') {
    const suffix = Number(match[2])
    if (suffix === 0) return 'unsatisfiable'
    start = Math.max(size - suffix, 0)
    end = size - 1
  } else {
    start = Number(match[1])
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1)
  }
  if (start >= size || start > end) return 'unsatisfiable'
  return [start, end]
}

const text = (status: number, body: string) => new Response(body, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } })

/**
 * A fetch handler serving the files under `root`: GET and HEAD, `index.html`
 * for directories, single byte ranges, and nothing outside `root`: not
 * through `..`, and not through a symbolic link that points out of it.
 */
export function staticFiles(root: string): FetchHandler {
  const base = resolve(root)
  // Where root really is, once: links inside are judged against it.
  let realBase: Promise<string> | undefined
  return async (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      return new Response('method not allowed\n', { status: 405, headers: { allow: 'GET, HEAD' } })
    }
    let pathname: string
    try {
      pathname = decodeURIComponent(new URL(request.url).pathname)
    } catch {
      return text(400, 'bad path\n')
    }
    let path = resolve(join(base, pathname))
    if (path !== base && !path.startsWith(base + sep)) return text(403, 'forbidden\n')
    let info = await stat(path).catch(() => undefined)
    if (info?.isDirectory()) {
      path = join(path, 'index.html')
      info = await stat(path).catch(() => undefined)
    }
    if (!info?.isFile()) return text(404, 'not found\n')
    // A link (of the file or a directory on the way) may lead out of root.
    const real = await realpath(path).catch(() => undefined)
    const realRoot = await (realBase ??= realpath(base).catch(() => base))
    if (!real || (real !== realRoot && !real.startsWith(realRoot + sep))) return text(403, 'forbidden\n')
    path = real

    const headers: Record<string, string> = {
      'content-type': contentType(path),
      'accept-ranges': 'bytes',
      'last-modified': info.mtime.toUTCString(),
    }
    const range = parseRange(request.headers.get('range'), info.size)
    if (range === 'unsatisfiable') {
      return new Response(null, { status: 416, headers: { 'content-range': `bytes */${info.size}` } })
    }
    const [start, end] = range ?? [0, info.size - 1]
    headers['content-length'] = String(end - start + 1)
    if (range) headers['content-range'] = `bytes ${start}-${end}/${info.size}`
    const status = range ? 206 : 200
    if (request.method === 'HEAD' || info.size === 0) return new Response(null, { status, headers })
    // Streamed from disk: serve() pulls the next chunk only when the stream has room.
    const body = Readable.toWeb(createReadStream(path, { start, end, highWaterMark: 256 * 1024 })) as ReadableStream<Uint8Array>
    return new Response(body, { status, headers })
  }
}
