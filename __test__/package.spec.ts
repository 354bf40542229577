// The plain-Node entry points, without tsx: `import` must reach the ESM entry
// with named exports and `require` the CommonJS one (the package resolves
// itself by name through its `exports`). scripts/test-package.mjs runs the same
// scripts from installed tarballs.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const dir = join(__dirname, 'package')

for (const [script, label] of [['esm.mjs', 'esm'], ['cjs.cjs', 'cjs']] as const) {
  test(`${label}: plain node serves and fetches one request through the package's ${label} entry`, (t) => {
    const res = spawnSync(process.execPath, [script], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
    t.is(res.status, 0, res.stderr)
    t.is(res.stdout.trim(), `${label}: 200 hello from ${label}`)
  })
}
