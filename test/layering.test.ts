/**
 * Layering is enforced: src/domain imports nothing of ours outside it,
 * src/services no layers or programs, src/layers no programs. The checker
 * itself is tested on made-up import lists, so a broken checker cannot pass
 * a broken tree.
 */
import { describe, expect, it } from "vitest"
import { fileURLToPath } from "node:url"
import { importsOf, layeringViolations, layerOf, readImportLists, targetOf } from "./support/layering.js"

const repoRoot = fileURLToPath(new URL("../", import.meta.url))

describe("layering of src/", () => {
  const lists = readImportLists(repoRoot)

  it("reads every layer of the tree", () => {
    const layers = new Set(lists.map((l) => layerOf(l.file)))
    for (const layer of ["domain", "services", "layers", "programs", "index"]) expect(layers).toContain(layer)
    // Sanity: the reader sees imports (a reader returning nothing would pass any rule).
    expect(lists.find((l) => l.file === "src/services/Model.ts")?.imports).toContain("../domain/Batches.js")
  })

  it("has no import that breaks the rules", () => {
    expect(layeringViolations(lists).map((v) => v.message)).toEqual([])
  })
})

describe("the layering checker", () => {
  it("finds the layer of a path and the target of a specifier", () => {
    expect(layerOf("src/domain/Config.ts")).toBe("domain")
    expect(layerOf("src/index.ts")).toBe("index")
    expect(layerOf("src/layers/sub/deep.ts")).toBe("layers")
    expect(layerOf("test/x.ts")).toBeNull()
    expect(targetOf("src/domain/A.ts", "../layers/B.js")).toBe("src/layers/B.js")
    expect(targetOf("src/domain/A.ts", "./B.js")).toBe("src/domain/B.js")
    expect(targetOf("src/domain/A.ts", "effect")).toBeNull()
    expect(targetOf("src/domain/A.ts", "node:fs")).toBeNull()
    expect(targetOf("src/layers/A.ts", "qlr")).toBe("src/index.ts")
  })

  it("reads every kind of import statement", () => {
    const source = [
      `import { a } from "./a.js"`,
      `import type { B } from "../services/b.js"`,
      `import "./side-effect.js"`,
      `export * from "./c.js"`,
      `export { d } from "./d.js"`,
      `const e = await import("../programs/e.js")`,
      `type F = typeof import("../layers/f.js")`
    ].join("\n")
    expect(importsOf(source)).toEqual([
      "./a.js",
      "../services/b.js",
      "./side-effect.js",
      "./c.js",
      "./d.js",
      "../programs/e.js",
      "../layers/f.js"
    ])
  })

  it("accepts what each layer may import", () => {
    expect(
      layeringViolations([
        { file: "src/domain/A.ts", imports: ["./B.js", "effect", "node:crypto"] },
        { file: "src/services/S.ts", imports: ["../domain/A.js", "./T.js", "effect"] },
        { file: "src/layers/L.ts", imports: ["../domain/A.js", "../services/S.js", "./files.js", "@tensorflow/tfjs"] },
        { file: "src/programs/P.ts", imports: ["../domain/A.js", "../services/S.js", "../layers/L.js", "./Q.js"] },
        { file: "src/index.ts", imports: ["./domain/A.js", "./layers/L.js", "./programs/P.js"] }
      ])
    ).toEqual([])
  })

  it("fails on every kind of violation", () => {
    const violations = layeringViolations([
      { file: "src/domain/A.ts", imports: ["../services/S.js", "../layers/L.js", "../programs/P.js", "../index.js", "qlr"] },
      { file: "src/domain/B.ts", imports: ["../../test/support/fixtures.js"] },
      { file: "src/services/S.ts", imports: ["../layers/L.js", "../programs/P.js"] },
      { file: "src/layers/L.ts", imports: ["../programs/P.js", "../index.js"] },
      // A type-only or dynamic import counts as much as a static one.
      { file: "src/layers/M.ts", imports: importsOf(`import type { X } from "../programs/run.js"\nconst y = () => import("../programs/sweep.js")`) }
    ])
    expect(violations.map((v) => `${v.file} -> ${v.specifier}`)).toEqual([
      "src/domain/A.ts -> ../services/S.js",
      "src/domain/A.ts -> ../layers/L.js",
      "src/domain/A.ts -> ../programs/P.js",
      "src/domain/A.ts -> ../index.js",
      "src/domain/A.ts -> qlr",
      "src/domain/B.ts -> ../../test/support/fixtures.js",
      "src/services/S.ts -> ../layers/L.js",
      "src/services/S.ts -> ../programs/P.js",
      "src/layers/L.ts -> ../programs/P.js",
      "src/layers/L.ts -> ../index.js",
      "src/layers/M.ts -> ../programs/run.js",
      "src/layers/M.ts -> ../programs/sweep.js"
    ])
    expect(violations[0]!.message).toContain("domain may import only domain")
  })
})
