/**
 * File writes that never leave a half-written file: write a temp file beside
 * the target, then rename it over the target (atomic on one file system).
 * @since 0.1.0
 */
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { mkdir, rename, rm, writeFile } from "node:fs/promises"
import { basename, dirname, join } from "node:path"

/** Write `contents` to `path` atomically; `onError` maps a failure to the caller's error type. */
export const writeFileAtomic = <E>(
  path: string,
  contents: string | Uint8Array,
  onError: (message: string) => E
): Effect.Effect<void, E> =>
  Effect.tryPromise({
    try: async () => {
      await mkdir(dirname(path), { recursive: true })
      const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`)
      try {
        await writeFile(temp, contents)
        await rename(temp, path)
      } catch (e) {
        await rm(temp, { force: true })
        throw e
      }
    },
    catch: (e) => onError(`cannot write ${path}: ${e instanceof Error ? e.message : String(e)}`)
  })

/** `JSON.stringify` with a trailing newline, as every JSON file qlr writes. */
export const jsonText = (value: unknown): string => JSON.stringify(value, null, 2) + "\n"
