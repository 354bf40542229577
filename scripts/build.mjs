// `npm run build [-- --features a,b]`: the addon in release mode (extra
// arguments go to `napi build`, e.g. tokio-quiche feature flags), then the
// TS layer into dist/.
import { execFileSync } from 'node:child_process'

// npx is npx.cmd on Windows, which only a shell runs.
const run = (cmd, args) => execFileSync(cmd, args, { stdio: 'inherit', shell: process.platform === 'win32' })
run('npx', ['napi', 'build', '--platform', '--release', '--manifest-path', 'crates/core/Cargo.toml', '-o', '.', ...process.argv.slice(2)])
run('npx', ['tsc', '-p', 'src-ts'])
run('node', ['scripts/esm-entry.mjs'])
