/**
 * The layering rules of src/, as a pure checker over (file, imports) lists,
 * and a reader that lists the imports of every file under src/.
 *
 * Layers, innermost first:
 * - `domain`: pure; imports nothing of ours outside src/domain;
 * - `services`: Context tags; may import domain and services;
 * - `layers`: implementations of the services; may import domain, services and layers;
 * - `programs` and `index` (src/index.ts, the public API): may import everything.
 * Packages and Node built-ins are not ours and are allowed everywhere,
 * except the package's own name (`qlr`, `qlr/...`), which is src/index.ts or
 * the CLI seen from outside.
 */
import { readdirSync, readFileSync } from "node:fs"
import { posix } from "node:path"
import ts from "typescript"

/** A file of src/ (path relative to the repository root, with `/`) and the module specifiers it imports. */
export interface ImportList {
  readonly file: string
  readonly imports: ReadonlyArray<string>
}

/** Where a file of ours sits. `other` is anything under src/ outside the named layers. */
export type SrcLayer = "domain" | "services" | "layers" | "programs" | "index" | "other"

/** What each layer may import of ours. */
const allowed: Record<SrcLayer, ReadonlyArray<SrcLayer>> = {
  domain: ["domain"],
  services: ["domain", "services"],
  layers: ["domain", "services", "layers"],
  programs: ["domain", "services", "layers", "programs", "index", "other"],
  index: ["domain", "services", "layers", "programs", "index", "other"],
  other: ["domain", "services", "layers", "programs", "index", "other"]
}

/** The layer of a path relative to the repository root (`src/domain/Config.ts` -> `domain`); null outside src/. */
export const layerOf = (path: string): SrcLayer | null => {
  const parts = posix.normalize(path).split("/")
  if (parts[0] !== "src" || parts.length < 2) return null
  if (parts.length === 2) return parts[1]!.startsWith("index.") ? "index" : "other"
  const dir = parts[1]!
  return dir === "domain" || dir === "services" || dir === "layers" || dir === "programs" ? dir : "other"
}

/** The repository path a specifier of `file` points to, or null when it is not ours (a package or built-in). */
export const targetOf = (file: string, specifier: string): string | null => {
  if (specifier === "qlr" || specifier.startsWith("qlr/")) return "src/index.ts"
  if (!specifier.startsWith(".")) return null
  return posix.normalize(posix.join(posix.dirname(file), specifier))
}

/** One violation: which file imports what, and why that is not allowed. */
export interface Violation {
  readonly file: string
  readonly specifier: string
  readonly message: string
}

/** Every import that breaks the layering rules (empty when the tree is clean). */
export const layeringViolations = (lists: ReadonlyArray<ImportList>): ReadonlyArray<Violation> =>
  lists.flatMap(({ file, imports }) => {
    const from = layerOf(file)
    if (from === null) return []
    return imports.flatMap((specifier) => {
      const target = targetOf(file, specifier)
      if (target === null) return []
      const to = layerOf(target) ?? "outside src"
      return to !== "outside src" && allowed[from].includes(to)
        ? []
        : [{ file, specifier, message: `${file} (${from}) imports ${specifier} (${to}): ${from} may import only ${allowed[from].join(", ")}` }]
    })
  })

/** Every module specifier a TypeScript source imports: static, type-only, re-exports, dynamic `import()` and `typeof import()`. */
export const importsOf = (source: string): ReadonlyArray<string> =>
  ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName)

/** The import lists of every .ts file under `dir` (relative to `root`), recursively. */
export const readImportLists = (root: string, dir = "src"): ReadonlyArray<ImportList> =>
  readdirSync(posix.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = posix.join(dir, entry.name)
    if (entry.isDirectory()) return readImportLists(root, path)
    if (!entry.isFile() || !entry.name.endsWith(".ts")) return []
    return [{ file: path, imports: importsOf(readFileSync(posix.join(root, path), "utf8")) }]
  })
