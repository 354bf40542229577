// Stand-ins for undici's Request and Response that build the real object
// only when something they do not answer themselves is used: on Node 20 both
// types (and a body stream) cost as much to make as the rest of a small request.

/** Where a stand-in defers to its real object: `key` read, written or called on it. */
function defer<L>(key: PropertyKey, call: boolean, realOf: (lazy: L) => object): PropertyDescriptor {
  const real = (self: L) => realOf(self) as Record<PropertyKey, unknown>
  if (call) {
    return {
      configurable: true,
      writable: true,
      value(this: L, ...args: unknown[]) {
        const target = real(this)
        return (target[key] as (...a: unknown[]) => unknown).apply(target, args)
      },
    }
  }
  return {
    configurable: true,
    get(this: L) {
      return real(this)[key]
    },
    set(this: L, value: unknown) {
      real(this)[key] = value
    },
  }
}

/**
 * Makes instances of `Lazy` pass for instances of `Real` (`instanceof`
 * included): what `Lazy.prototype` does not define itself defers to the real
 * object `realOf` returns. That covers Real's accessors and methods, and the
 * per-instance slots of `sample` (undici's state symbols), which undici's own
 * code reads when a stand-in is handed to it.
 */
export function standIn<L>(Lazy: { prototype: L }, Real: { prototype: object }, sample: object, realOf: (lazy: L) => object): void {
  const proto = Lazy.prototype as object
  Object.setPrototypeOf(proto, Real.prototype)
  for (const key of Reflect.ownKeys(Real.prototype)) {
    const own = Object.getOwnPropertyDescriptor(Real.prototype, key)!
    if (key === 'constructor' || Object.hasOwn(proto, key)) continue
    if (own.get || typeof own.value === 'function') Object.defineProperty(proto, key, defer(key, !own.get, realOf))
  }
  for (const key of Reflect.ownKeys(sample)) Object.defineProperty(proto, key, defer(key, false, realOf))
}
