// `require` resolves the package's CommonJS entry.
const { connect, generateSelfSignedCertificate, serve } = require('tokio-quiche')
const { roundTrip } = require('./round-trip.cjs')

roundTrip({ connect, generateSelfSignedCertificate, serve }, 'cjs').catch((err) => {
  console.error(err)
  process.exitCode = 1
})
