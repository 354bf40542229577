// `npm run test:features`: builds the addon with every optional tokio-quiche
// feature into build/features (the default binary stays in place) and runs
// __test__/features.spec.ts against it.
import { execFileSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

const FEATURES = ['gcongestion', 'zero-copy', 'rpk', 'perf-quic-listener-metrics', 'tokio-task-metrics']
const OUT = 'build/features'
const run = (cmd, args, env = process.env) => execFileSync(cmd, args, { stdio: 'inherit', env })

run('npx', ['napi', 'build', '--platform', '--release', '--manifest-path', 'crates/core/Cargo.toml', '-o', OUT, '--no-js', '--features', FEATURES.join(' ')])
const binary = readdirSync(OUT).find((f) => f.endsWith('.node'))
run('npx', ['ava', '__test__/features.spec.ts'], {
  ...process.env,
  NAPI_RS_NATIVE_LIBRARY_PATH: join(process.cwd(), OUT, binary),
  TQ_EXPECT_FEATURES: ['capture_keylogs', ...FEATURES].join(','),
})
