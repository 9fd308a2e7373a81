// `npm run build:native`: build the optional BLAS addon (qlr_blas.c) with
// node-gyp, then load it once to prove it works. Needs a C compiler and
// OpenBLAS's headers and library (Debian: apt-get install libopenblas-dev).
// Nothing else depends on it: without it qlr runs on plain wasm.
// `--if-possible` (npm ci's prepare step): try quietly and never fail the
// install; without a compiler or OpenBLAS, say what to do instead.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const ifPossible = process.argv.includes("--if-possible")
// Node's own headers when they sit beside the binary (distribution packages, nodejs.org
// tarballs, nvm): node-gyp would otherwise download them, which fails offline.
const prefix = resolve(dirname(process.execPath), "..")
const nodedir = existsSync(join(prefix, "include", "node", "node_api.h")) ? [`--nodedir=${prefix}`] : []
// npm names its bundled node-gyp to scripts; outside npm, npm's copy beside node, else the PATH's.
const npmGyp = join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js")
const gyp = process.env.npm_config_node_gyp ?? (existsSync(npmGyp) ? npmGyp : undefined)
const [command, args] = gyp ? [process.execPath, [gyp]] : ["node-gyp", []]
const built = spawnSync(command, [...args, "rebuild", ...nodedir], { cwd: here, stdio: ifPossible ? "ignore" : "inherit" })
if (built.status !== 0 && ifPossible) {
  console.error(
    "qlr: the optional native BLAS addon was not built (it needs a C compiler and OpenBLAS), so --backend auto uses plain wasm; " +
      "for the faster wasm-blas backend: apt-get install build-essential libopenblas-dev, then npm run build:native"
  )
  process.exit(0)
}
if (built.status !== 0) {
  console.error(
    `qlr: building the native BLAS addon failed (${built.error?.message ?? `exit ${built.status}`}). ` +
      "It needs a C compiler, make, python3 and OpenBLAS (Debian/Ubuntu: apt-get install build-essential libopenblas-dev). " +
      "qlr still works without it, on --backend wasm."
  )
  process.exit(1)
}
let addon
try {
  addon = createRequire(import.meta.url)("./build/Release/qlr_blas.node")
} catch (e) {
  console.error(`qlr: the native BLAS addon was built but does not load (${e.message}); qlr still works without it, on --backend wasm.`)
  process.exit(ifPossible ? 0 : 1)
}
console.log(`qlr: native BLAS addon built: ${addon.describe()}; --backend auto now uses wasm-blas`)
