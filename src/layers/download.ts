/**
 * Getting a corpus file into the cache: download with a progress display,
 * streaming unzip, size and checksum verification, and atomic writes. Data
 * flows chunk by chunk from the network (or a local zip) through the
 * decompressor and the hashes into a temp file, so a 100 MB corpus is never
 * held whole in memory here, and the temp file becomes the cache file only
 * once verified.
 * @since 0.1.0
 */
import { createHash, randomUUID } from "node:crypto"
import { createReadStream, createWriteStream } from "node:fs"
import { mkdir, rename, rm } from "node:fs/promises"
import { basename, dirname, join } from "node:path"
import { pipeline } from "node:stream/promises"
import { Effect } from "effect"
import { Unzip, UnzipInflate } from "fflate"
import { DatasetError } from "../domain/Errors.js"

/** What a verified corpus file must be: its size, and its published checksums where they exist. */
export interface ExpectedContent {
  readonly size: number
  readonly md5?: string
  readonly sha256?: string
}

/** Size and checksums of some content. */
export interface ContentDigest {
  readonly size: number
  readonly md5: string
  readonly sha256: string
}

export const digestOf = (bytes: Uint8Array): ContentDigest => ({
  size: bytes.length,
  md5: createHash("md5").update(bytes).digest("hex"),
  sha256: createHash("sha256").update(bytes).digest("hex")
})

/** How `actual` differs from `expected`, or null when it matches. */
export const verificationProblem = (actual: ContentDigest, expected: ExpectedContent): string | null => {
  if (actual.size !== expected.size) return `its size is ${actual.size} bytes, expected ${expected.size}`
  if (expected.md5 !== undefined && actual.md5 !== expected.md5.toLowerCase()) {
    return `its md5 is ${actual.md5}, expected ${expected.md5}`
  }
  if (expected.sha256 !== undefined && actual.sha256 !== expected.sha256.toLowerCase()) {
    return `its sha256 is ${actual.sha256}, expected ${expected.sha256}`
  }
  return null
}

/** A short reason for a low-level error, with the system code (ECONNREFUSED, ENOSPC, ...) where there is one. */
export const reasonOf = (error: unknown): string => {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error
  const code = (cause as { code?: unknown } | null)?.code
  const message = cause instanceof Error ? cause.message : String(cause)
  return typeof code === "string" && !message.includes(code) ? `${code}: ${message}` : message
}

/** A failed cache write, with the fix. */
export const cacheWriteFailed = (problem: string): DatasetError =>
  new DatasetError({
    message: `${problem}; check free space and permissions of the cache directory, or choose another with QLR_CACHE_DIR`
  })

const cacheWriteError = (path: string, error: unknown): DatasetError =>
  cacheWriteFailed(`cannot write ${path} (${reasonOf(error)})`)

/**
 * Run `write` on a temp file beside `path` and rename it into place only when
 * `write` succeeds: a failure or interruption leaves no partial file.
 */
export const atomicFile = <A>(
  path: string,
  write: (tempPath: string) => Effect.Effect<A, DatasetError>
): Effect.Effect<A, DatasetError> =>
  Effect.gen(function* () {
    const directory = dirname(path)
    yield* Effect.tryPromise({
      try: () => mkdir(directory, { recursive: true }),
      catch: (e) => cacheWriteError(directory, e)
    })
    const tempPath = join(directory, `.${basename(path)}.${process.pid}.${randomUUID()}.tmp`)
    return yield* write(tempPath).pipe(
      Effect.tap(() => Effect.tryPromise({ try: () => rename(tempPath, path), catch: (e) => cacheWriteError(path, e) })),
      Effect.onError(() => Effect.promise(() => rm(tempPath, { force: true }).catch(() => undefined)))
    )
  })

/** A fault of the source (network, server, archive), as opposed to a local write error. */
class SourceFault extends Error {}

/** Where a corpus file comes from, for the messages: what it is and how the user can fix a failure. */
export interface Origin {
  /** The URL or local path read. */
  readonly source: string
  /** The fix to offer when the source fails. */
  readonly fix: string
}

/** What to put in the cache, and how to check it. */
export interface Target {
  readonly destination: string
  /** The zip member to extract, or null when the source is the file itself. */
  readonly member: string | null
  readonly expected: ExpectedContent
}

/** Download `origin.source` into `target.destination`, verified, with progress on stderr. */
export const download = (origin: Origin, target: Target): Effect.Effect<void, DatasetError> =>
  materialize(origin, target, async (signal) => {
    let response: Response
    try {
      response = await fetch(origin.source, { signal })
    } catch (error) {
      throw new SourceFault(`cannot download ${origin.source} (${reasonOf(error)})`)
    }
    if (!response.ok || response.body === null) {
      await response.body?.cancel()
      throw new SourceFault(`downloading ${origin.source} failed: HTTP ${response.status} ${response.statusText}`.trim())
    }
    const length = Number(response.headers.get("content-length"))
    return receive(response.body, origin.source, Number.isFinite(length) && length > 0 ? length : null)
  })

/** Extract `target.member` from the local zip `origin.source` into `target.destination`, verified. */
export const extractLocalZip = (origin: Origin, target: Target): Effect.Effect<void, DatasetError> =>
  materialize(origin, target, async () => readLocal(origin.source))

async function* readLocal(path: string): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of createReadStream(path)) yield chunk as Uint8Array
  } catch (error) {
    throw new SourceFault(`cannot read ${path} (${reasonOf(error)})`)
  }
}

const materialize = (
  origin: Origin,
  target: Target,
  open: (signal: AbortSignal) => Promise<AsyncIterable<Uint8Array>>
): Effect.Effect<void, DatasetError> =>
  atomicFile(target.destination, (tempPath) =>
    Effect.tryPromise({
      try: async (signal) => {
        const chunks = await open(signal)
        const content = target.member === null ? chunks : unzipMember(chunks, target.member, origin.source)
        return writeDigested(content, tempPath, signal)
      },
      catch: (error) =>
        error instanceof SourceFault
          ? new DatasetError({ message: `${error.message}. ${origin.fix}` })
          : cacheWriteError(tempPath, error)
    }).pipe(
      Effect.flatMap((digest) => {
        const problem = verificationProblem(digest, target.expected)
        return problem === null
          ? Effect.void
          : Effect.fail(
              new DatasetError({
                message: `${origin.source} failed verification: ${problem}, so it is damaged or not the expected file. ${origin.fix}`
              })
            )
      })
    )
  )

const writeDigested = async (
  chunks: AsyncIterable<Uint8Array>,
  path: string,
  signal: AbortSignal
): Promise<ContentDigest> => {
  const md5 = createHash("md5")
  const sha256 = createHash("sha256")
  let size = 0
  await pipeline(
    chunks,
    async function* (source: AsyncIterable<Uint8Array>) {
      for await (const chunk of source) {
        md5.update(chunk)
        sha256.update(chunk)
        size += chunk.length
        yield chunk
      }
    },
    createWriteStream(path),
    { signal }
  )
  return { size, md5: md5.digest("hex"), sha256: sha256.digest("hex") }
}

/** The response body, with progress shown and a cut connection reported as such. */
async function* receive(
  body: AsyncIterable<Uint8Array>,
  url: string,
  total: number | null
): AsyncGenerator<Uint8Array> {
  const progress = progressDisplay(basename(new URL(url).pathname) || url, total)
  let received = 0
  try {
    for await (const chunk of body) {
      received += chunk.length
      progress.update(received)
      yield chunk
    }
  } catch (error) {
    throw new SourceFault(`the download of ${url} stopped after ${received} bytes (${reasonOf(error)})`)
  }
  if (total !== null && received < total) {
    throw new SourceFault(`the download of ${url} stopped after ${received} of ${total} bytes`)
  }
  progress.finish(received)
}

/**
 * Stream one member out of a zip archive (fflate's streaming `Unzip`): each
 * pushed chunk of the archive yields the inflated data it completes.
 */
async function* unzipMember(
  archive: AsyncIterable<Uint8Array>,
  member: string,
  source: string
): AsyncGenerator<Uint8Array> {
  const inflated: Array<Uint8Array> = []
  const names: Array<string> = []
  let failure: unknown = null
  let complete = false
  const unzip = new Unzip((file) => {
    names.push(file.name)
    if (file.name !== member) return
    file.ondata = (error, data, final) => {
      if (error !== null) failure ??= error
      else {
        inflated.push(data)
        complete ||= final
      }
    }
    file.start()
  })
  unzip.register(UnzipInflate)
  const corrupt = (error: unknown) => new SourceFault(`${source} is a corrupt zip archive (${reasonOf(error)})`)
  for await (const chunk of archive) {
    try {
      unzip.push(chunk)
    } catch (error) {
      throw corrupt(error)
    }
    if (failure !== null) throw corrupt(failure)
    yield* inflated.splice(0)
  }
  try {
    unzip.push(new Uint8Array(0), true)
  } catch {
    // fflate's only complaint at the final push is data missing from the end
    complete = false
  }
  if (failure !== null) throw corrupt(failure)
  yield* inflated.splice(0)
  if (!names.includes(member)) {
    const found = names.length === 0 ? "no zip entries at all" : `entries ${names.join(", ")}`
    throw new SourceFault(`${source} is not a zip archive holding "${member}" (found ${found})`)
  }
  if (!complete) throw new SourceFault(`${source} is a truncated zip archive: it ends before "${member}" is complete`)
}

const megabytes = (bytes: number): string => (bytes / 1e6).toFixed(1)

/**
 * Download progress on stderr: redrawn in place at most 10 times a second on
 * a terminal; otherwise (a log file, CI) one line per 10%, or per 10 MB when
 * the size is unknown.
 */
const progressDisplay = (label: string, total: number | null) => {
  const terminal = process.stderr.isTTY === true
  const line = (received: number) =>
    total === null
      ? `downloading ${label}: ${megabytes(received)} MB`
      : `downloading ${label}: ${megabytes(received)} / ${megabytes(total)} MB (${Math.floor((100 * received) / total)}%)`
  let lastDraw = 0
  let lastStep = -1
  return {
    update: (received: number): void => {
      if (terminal) {
        const now = Date.now()
        if (now - lastDraw < 100) return
        lastDraw = now
        process.stderr.write(`\r${line(received)}`)
        return
      }
      const step = total === null ? Math.floor(received / 10e6) : Math.floor((10 * received) / total)
      if (step === lastStep) return
      lastStep = step
      process.stderr.write(`${line(received)}\n`)
    },
    finish: (received: number): void => {
      // off a terminal a known total has just printed its 100% line
      if (terminal) process.stderr.write(`\r${line(received)}\n`)
      else if (total === null) process.stderr.write(`${line(received)}\n`)
    }
  }
}
