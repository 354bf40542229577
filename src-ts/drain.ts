import type { ServerH3Controller } from './server.js'

/** GOAWAY on a connection, unless it has closed already (then there is nothing to drain). */
export function sendGoaway(controller: ServerH3Controller): void {
  try {
    controller.sendGoaway()
  } catch {
    // Closed meanwhile.
  }
}

/**
 * A server's graceful close: GOAWAY on every connection, then wait until
 * each has closed on its own, or `timeoutMs` (`Infinity`: no limit). A
 * client closes once its requests are done; only then is a response
 * certainly delivered. Waiting for the handlers, or for the streams to
 * close, is not enough: the driver may still hold bytes for a slow reader,
 * and closing the connection would drop them.
 */
export async function drain(controllers: Iterable<ServerH3Controller>, timeoutMs: number): Promise<void> {
  const open = [...controllers]
  for (const controller of open) sendGoaway(controller)
  let timer: NodeJS.Timeout | undefined
  const closed = Promise.all(open.map((controller) => controller.closed))
  const timeout = new Promise<void>((resolve) => {
    if (Number.isFinite(timeoutMs)) timer = setTimeout(resolve, timeoutMs)
  })
  await Promise.race([closed, timeout])
  clearTimeout(timer)
}
