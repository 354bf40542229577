// `npm run test:package`: what a user gets from `npm install tokio-quiche`.
// Packs the root package and this host's platform package, e.g.
// tokio-quiche-linux-x64-gnu (the napi-rs layout: JS in the root, the addon
// in a per-platform package, the name from `napi.targets`), installs both
// tarballs into a fresh project with cargo/rustc off PATH, and runs
// __test__/package/{esm.mjs,cjs.cjs} there; then installs the root alone and
// expects one clear error naming the platform package. On Linux and macOS it
// also runs the scripts under the oldest Node the package claims (engines)
// and the newest majors, from the registry's node-<os>-<arch> packages (the
// binaries the `node` package installs). Prints ava-style
// ✔ / ✘ lines, which .ci/run counts.
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createRequire } from 'node:module'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const platformPackage = createRequire(import.meta.url)('../dist/native.js').platformPackageName()
const target = platformPackage.slice('tokio-quiche-'.length)
const addon = `tokio-quiche.${target}.node`
const shell = process.platform === 'win32' // npm is npm.cmd there
// The published tarball must hold the runtime only.
const forbidden = /^(__test__|bench|crates|scripts|src-ts|examples|interop|docs|npm|target|\.ci|\.github)\/|\.node$|^Cargo\.|\.map$|\.spec\./

let failed = 0
function check(name, fn) {
  try {
    fn()
    console.log(`  ✔ package › ${name}`)
  } catch (err) {
    failed++
    console.log(`  ✘ [fail] package › ${name}\n${String(err?.stack ?? err).replace(/^/gm, '    ')}`)
  }
}

for (const file of [addon, 'dist/index.js', 'dist/index.mjs', 'dist/index.d.mts']) {
  if (!existsSync(join(root, file))) throw new Error(`${file} is missing: run \`npm run build\` first`)
}

const work = mkdtempSync(join(tmpdir(), 'tq-test-package-'))
const npm = (args, cwd) => execFileSync('npm', args, { cwd, shell, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
const pack = (dir) => join(work, JSON.parse(npm(['pack', '--json', '--pack-destination', work], dir))[0].filename)

// cargo and rustc must not be reachable: the install may not build anything. Directories
// holding them leave PATH, unless Node is there too (Debian's rustc-web installs into /usr/bin);
// stubs that fail come first and hide those.
const noRust = join(work, 'no-rust')
mkdirSync(noRust)
for (const tool of ['cargo', 'rustc']) {
  writeFileSync(join(noRust, tool), `#!/bin/sh\necho "${tool} is off PATH in this test" >&2\nexit 1\n`, { mode: 0o755 })
  writeFileSync(join(noRust, `${tool}.cmd`), `@echo ${tool} is off PATH in this test 1>&2\r\n@exit /b 1\r\n`)
}
const holds = (dir, tools) => tools.some((tool) => existsSync(join(dir, tool)))
const pathWithoutRust = [
  noRust,
  ...process.env.PATH.split(delimiter).filter((dir) => holds(dir, ['node', 'node.exe']) || !holds(dir, ['cargo', 'rustc', 'cargo.exe', 'rustc.exe'])),
].join(delimiter)

function project(name, tarballs) {
  const dir = join(work, name)
  cpSync(join(root, '__test__/package'), dir, { recursive: true })
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `tq-${name}`, private: true }))
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', ...tarballs], {
    cwd: dir,
    shell,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, PATH: pathWithoutRust },
  })
  return dir
}

// The oldest Node the package claims: package.json's engines.node (">= 20.17.0").
const engines = createRequire(import.meta.url)('../package.json').engines.node

/**
 * Installs into `dir` the oldest Node release the registry has for this platform that `engines`
 * allows (20.17.0 on x64; 20.18.0 on arm64, which has no 20.17), and the newest 22 and 24.
 * Returns [version, executable] pairs.
 */
function installNodes(dir) {
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true }))
  const nodePackage = `node-${process.platform}-${process.arch}`
  const oldest = [JSON.parse(npm(['view', `${nodePackage}@${engines} <21`, 'version', '--json'], dir))].flat()[0]
  const nodeVersions = [oldest, '22', '24']
  const specs = nodeVersions.map((v) => `node-${v}@npm:${nodePackage}@${v}`)
  npm(['install', '--no-audit', '--no-fund', ...specs], dir)
  return nodeVersions.map((v) => [v, join(dir, 'node_modules', `node-${v}`, 'bin', 'node')])
}

function runScript(dir, script, node = process.execPath) {
  return spawnSync(node, [script], { cwd: dir, encoding: 'utf8', timeout: 30_000, env: { ...process.env, PATH: pathWithoutRust } })
}

try {
  check('npm pack --dry-run lists no test, bench or build files', () => {
    const files = JSON.parse(npm(['pack', '--dry-run', '--json'], root))[0].files.map((f) => f.path)
    const bad = files.filter((f) => forbidden.test(f))
    if (bad.length) throw new Error(`unexpected files in the tarball: ${bad.join(', ')}`)
    for (const needed of ['index.js', 'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts']) {
      if (!files.includes(needed)) throw new Error(`${needed} is missing from the tarball`)
    }
  })

  const rootTarball = pack(root)
  // What `napi artifacts` does: put the built addon into its platform package.
  const platformDir = join(work, 'platform')
  cpSync(join(root, 'npm', target), platformDir, { recursive: true })
  copyFileSync(join(root, addon), join(platformDir, addon))
  const platformTarball = pack(platformDir)

  const full = project('full', [rootTarball, platformTarball])
  const nodes = [['this Node', process.execPath]]
  if (process.platform !== 'win32') {
    const dir = join(work, 'nodes')
    mkdirSync(dir)
    nodes.push(...installNodes(dir).map(([v, path]) => [`Node ${v}`, path]))
  }
  for (const [nodeName, node] of nodes) {
    for (const [script, label] of [['esm.mjs', 'esm'], ['cjs.cjs', 'cjs']]) {
      check(`${nodeName}: ${label} script serves and fetches one request from the installed tarballs`, () => {
        const res = runScript(full, script, node)
        if (res.status !== 0 || !res.stdout.includes(`${label}: 200 hello from ${label}`)) {
          throw new Error(`exit ${res.status}\n${res.stdout}${res.stderr}`)
        }
      })
    }
  }

  check('types resolve through both conditions (tsc over an .mts and a .cts)', () => {
    writeFileSync(join(full, 'types.mts'), "import { serve, type ServerH3Event } from 'tokio-quiche'\nexport const ok: [typeof serve, ServerH3Event['type']] = [serve, 'headers']\n")
    writeFileSync(join(full, 'types.cts'), "import { connect } from 'tokio-quiche'\nexport const ok: typeof connect = connect\n")
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const args = ['--noEmit', '--strict', '--module', 'nodenext', '--skipLibCheck', '--traceResolution', 'types.mts', 'types.cts']
    const res = spawnSync(process.execPath, [tsc, ...args], { cwd: full, encoding: 'utf8' })
    for (const entry of ['index.d.mts', 'index.d.ts']) {
      if (!res.stdout.includes(`'tokio-quiche' was successfully resolved to '${join(full, 'node_modules', 'tokio-quiche', 'dist', entry)}'`)) {
        throw new Error(`tokio-quiche did not resolve to dist/${entry}\n${res.stdout.split('\n').filter((l) => l.includes('error')).join('\n')}`)
      }
    }
    if (res.status !== 0) throw new Error(res.stdout.split('\n').filter((l) => l.includes('error')).join('\n'))
  })

  const bare = project('bare', [rootTarball])
  check('without the platform package, one error names the package and the platform', () => {
    const res = runScript(bare, 'cjs.cjs')
    const expected = `no prebuilt addon for ${process.platform}-${process.arch}; install the platform package: npm install ${platformPackage}`
    if (res.status === 0 || !res.stderr.includes(expected)) throw new Error(`exit ${res.status}\n${res.stderr}`)
  })
} finally {
  rmSync(work, { recursive: true, force: true })
}
console.log(`package: ${failed ? `${failed} failed` : 'all passed'}`)
process.exitCode = failed ? 1 : 0
