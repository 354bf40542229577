// `import` resolves the package's ESM entry; named exports must be there.
import { connect, generateSelfSignedCertificate, serve } from 'tokio-quiche'
import { roundTrip } from './round-trip.cjs'

await roundTrip({ connect, generateSelfSignedCertificate, serve }, 'esm')
