/**
 * Preparation throughput: read, hash, encode and cache the 4 MB enwik8 head
 * as bytes into a fresh temp cache, as a first `qlr prepare` would.
 * @since 0.1.0
 */
import { existsSync } from "node:fs"
import { mkdtemp, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { ConfigProvider, Effect } from "effect"
import { DatasetError } from "../src/domain/Errors.js"
import { FileDatasetReader } from "../src/layers/FileDatasetReader.js"
import { prepare } from "../src/programs/prepare.js"

export interface PrepareBench {
  readonly prepare_mb_per_s: number
  readonly input_mb: number
}

const headPath = join("shared", "data", "enwik8", "enwik8_head_4M")

/** The head in ../shared/data beside the repository, found from here whether run from bench/ or dist/bench/. */
const findHead = (): string | null => {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    const candidate = join(dir, headPath)
    if (existsSync(candidate)) return candidate
  }
  return null
}

export const benchPrepare = (): Effect.Effect<PrepareBench, DatasetError> =>
  Effect.gen(function* () {
    const input = findHead()
    if (input === null) {
      return yield* new DatasetError({ message: `${headPath} not found above ${import.meta.url}: run the bench from a checkout beside shared/` })
    }
    const inputMb = (yield* Effect.promise(() => stat(input))).size / 1e6
    return yield* Effect.acquireUseRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "qlr-bench-prepare-"))),
      (cacheDir) =>
        Effect.gen(function* () {
          const started = performance.now()
          yield* prepare(`file:${input}`, "bytes").pipe(
            Effect.provide(FileDatasetReader.layer({ cacheDir })),
            // only the options above: no QLR_* variable of the caller applies
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
          )
          const seconds = (performance.now() - started) / 1000
          return { prepare_mb_per_s: inputMb / seconds, input_mb: inputMb }
        }),
      (cacheDir) => Effect.promise(() => rm(cacheDir, { recursive: true, force: true }))
    )
  })
