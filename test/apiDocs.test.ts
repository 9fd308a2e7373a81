/**
 * The API reference covers the public API: TypeDoc (typedoc.json treats its
 * warnings as errors) fails when an exported name has no doc comment or a
 * link does not resolve. Validation only, nothing written.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"

const root = fileURLToPath(new URL("..", import.meta.url))
const typedoc = fileURLToPath(new URL("../node_modules/typedoc/bin/typedoc", import.meta.url))

describe("API reference", () => {
  it("TypeDoc validates every exported name and link without warnings", async () => {
    const result = await promisify(execFile)(process.execPath, [typedoc, "--emit", "none"], { cwd: root }).then(
      ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? 1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` })
    )
    expect(result.output).not.toMatch(/\[warning\]|\[error\]/)
    expect(result.code).toBe(0)
  }, 120_000)
})
