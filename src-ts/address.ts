// `ip:port` strings, as the binding reports them, in the `{ address, family,
// port }` shape `net`/`http2` servers give from address().

/** Where a server listens, as `net.Server.address()` describes it. */
export interface AddressInfo {
  address: string
  family: 'IPv4' | 'IPv6'
  port: number
}

/** `127.0.0.1:443` or `[::1]:443` → its parts (brackets removed). */
export function addressInfo(hostPort: string): AddressInfo {
  const colon = hostPort.lastIndexOf(':')
  let address = hostPort.slice(0, colon)
  const family = address.startsWith('[') ? 'IPv6' : 'IPv4'
  if (family === 'IPv6') address = address.slice(1, -1)
  return { address, family, port: Number(hostPort.slice(colon + 1)) }
}
