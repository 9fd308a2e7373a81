/** Run the built `qlr` binary as a user would. */
import { execFile } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url))
export const sharedData = join(repoRoot, "..", "shared", "data")
export const qlrBin = join(repoRoot, "bin", "qlr.js")

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Run `qlr ARGS`, resolving with the exit code and output (never rejecting). */
export const runQlr = (args: ReadonlyArray<string>, env: Record<string, string> = {}): Promise<CliResult> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      [qlrBin, ...args],
      { cwd: repoRoot, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr })
    )
  })

/** A fresh temporary directory. */
export const tempDir = (prefix = "qlr-test-") => mkdtempSync(join(tmpdir(), prefix))
