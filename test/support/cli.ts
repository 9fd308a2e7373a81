/** Run the built `qlr` binary as a user would. */
import { execFile } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
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

/** The JSON lines of a file; none when it does not exist yet. */
export const readJsonLines = (path: string): Array<Record<string, unknown>> =>
  existsSync(path)
    ? readFileSync(path, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>)
    : []

/** Events without their timing fields, which may differ between equal runs (SPEC §6). */
export const withoutTiming = (events: ReadonlyArray<object>) =>
  events.map((e) => {
    const { elapsed: _e, tokens_per_second: _t, ...rest } = e as Record<string, unknown>
    return rest
  })
