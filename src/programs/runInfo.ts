/**
 * Facts about the code that made a run, recorded in config.json: package
 * versions and the git commit (null outside a git checkout).
 * @since 0.1.0
 */
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { readFile } from "node:fs/promises"
import { fileURLToPath } from "node:url"

const packageRoot = fileURLToPath(new URL("../../", import.meta.url))

const readVersion = (path: string) =>
  Effect.promise(() =>
    readFile(path, "utf8").then((t) => (JSON.parse(t) as { version: string }).version, () => null)
  )

const gitCommit = Effect.async<string | null>((resume) => {
  execFile("git", ["rev-parse", "HEAD"], { cwd: packageRoot }, (error, stdout) =>
    resume(Effect.succeed(error ? null : stdout.trim())))
})

/** Versions of qlr, Node, effect and tfjs, and the git commit. */
export const codeVersions = Effect.all({
  qlr: readVersion(`${packageRoot}package.json`),
  node: Effect.succeed(process.version),
  effect: readVersion(`${packageRoot}node_modules/effect/package.json`),
  tfjs: readVersion(`${packageRoot}node_modules/@tensorflow/tfjs-core/package.json`),
  git_commit: gitCommit
})
