/**
 * The DatasetReader backed by files. A named corpus comes from the data
 * directory (`--data-dir` / QLR_DATA_DIR, never touching the network), else
 * from the cache, else is downloaded into the cache and verified; a `file:`
 * input is read where it is. The prepared token ids are cached as
 * `tokens.bin` (Uint8 when the vocabulary has <= 256 symbols, else Uint16,
 * little-endian as every host Node runs on) beside a `meta.json`, reused
 * while the source file is unchanged and the tokens match their recorded
 * checksum, and rebuilt otherwise.
 *
 * Cache layout under the cache directory:
 * - `NAME/FILE`: downloaded corpora (`shakespeare_char/input.txt`, `enwik8/enwik8`, `text8/text8`);
 * - `prepared/KEY/tokens.bin` and `prepared/KEY/meta.json`.
 * @since 0.1.0
 */
import { createHash } from "node:crypto"
import { readFile, rm, stat } from "node:fs/promises"
import { homedir } from "node:os"
import { basename, join, resolve } from "node:path"
import { Config, Effect, Either, Layer, Option, Schema } from "effect"
import type { TokenArray } from "../domain/Batches.js"
import { DatasetError } from "../domain/Errors.js"
import {
  type CorpusProblem,
  type DatasetSource,
  type Encoding,
  type NamedDataset,
  effectiveEncoding,
  encodeCorpus,
  maxVocabularySize,
  parseDatasetName,
  splitSizes,
  splitTokens
} from "../domain/Vocabulary.js"
import { DatasetReader, type PreparedDataset } from "../services/DatasetReader.js"
import {
  type ExpectedContent,
  type Origin,
  cacheWriteFailed,
  digestOf,
  download,
  extractLocalZip,
  reasonOf,
  verificationProblem
} from "./download.js"
import { jsonText, writeFileAtomic } from "./files.js"

/** Where a named corpus is published, the file it unpacks to, and what that file must be. */
interface Corpus {
  readonly url: string
  readonly file: string
  readonly zipped: boolean
  readonly expected: ExpectedContent
}

const corpora: Record<NamedDataset, Corpus> = {
  shakespeare_char: {
    url: "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    file: "input.txt",
    zipped: false,
    expected: { size: 1_115_394, sha256: "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed" }
  },
  enwik8: {
    url: "http://mattmahoney.net/dc/enwik8.zip",
    file: "enwik8",
    zipped: true,
    expected: { size: 100_000_000, md5: "a1fa5ffddb56f4953e226637dabbb36a" }
  },
  // text8 has no published checksum: its size is what can be checked
  text8: { url: "http://mattmahoney.net/dc/text8.zip", file: "text8", zipped: true, expected: { size: 100_000_000 } }
}

/** Where {@link FileDatasetReader} looks for corpora and keeps its cache; every field is optional. */
export interface FileDatasetReaderOptions {
  /** A directory holding local copies (`DIR/enwik8/enwik8` or `DIR/enwik8/enwik8.zip`, ...); default QLR_DATA_DIR. */
  readonly dataDir?: string
  /** Default QLR_CACHE_DIR, else `$XDG_CACHE_HOME/qlr`, else `~/.cache/qlr`. */
  readonly cacheDir?: string
  /** Download URLs replacing the canonical ones (a mirror, or a local server in tests). */
  readonly urls?: Partial<Record<NamedDataset, string>>
  /** Expected size and checksums replacing the published ones, so that tests can serve the corpus heads. */
  readonly expected?: Partial<Record<NamedDataset, ExpectedContent>>
}

/** What the reader returns: a prepared dataset and the cache directory of its tokens. */
export interface CachedDataset extends PreparedDataset {
  readonly cachePath: string
}

interface Settings {
  readonly dataDir: string | null
  readonly cacheDir: string
  readonly urls: Record<NamedDataset, string>
  readonly expected: Record<NamedDataset, ExpectedContent>
}

/** A source file found on disk, identified by what tells that it changed. */
interface Located {
  readonly path: string
  readonly size: number
  readonly mtimeMs: number
  /** `cache`: qlr's own verified download, which it may delete and fetch again. */
  readonly origin: "file" | "data-dir" | "cache"
}

const formatVersion = 1

const PreparedMeta = Schema.Struct({
  formatVersion: Schema.Literal(formatVersion),
  dataset: Schema.String,
  encoding: Schema.Literal("chars", "bytes"),
  symbols: Schema.Array(Schema.Number),
  splits: Schema.Struct({ train: Schema.Number, val: Schema.Number, test: Schema.NullOr(Schema.Number) }),
  bytesPerToken: Schema.Literal(1, 2),
  tokensSha256: Schema.String,
  source: Schema.Struct({ path: Schema.String, size: Schema.Number, mtimeMs: Schema.Number, sha256: Schema.String })
})
type PreparedMeta = typeof PreparedMeta.Type

const environment = Config.all({
  dataDir: Config.string("QLR_DATA_DIR").pipe(Config.withDefault("")),
  cacheDir: Config.string("QLR_CACHE_DIR").pipe(Config.withDefault("")),
  xdgCacheHome: Config.string("XDG_CACHE_HOME").pipe(Config.withDefault(""))
})

const sha256Of = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const readBytes = (path: string, what: string): Effect.Effect<Buffer, DatasetError> =>
  Effect.tryPromise({
    try: () => readFile(path),
    catch: (e) => new DatasetError({ message: `cannot read ${what} ${path} (${reasonOf(e)}): check that it is readable` })
  })

/** A regular file at `path` as a source of the given origin, or none when there is no file there. */
const locateAt = (path: string, origin: Located["origin"]): Effect.Effect<Option.Option<Located>, DatasetError> =>
  Effect.tryPromise({ try: () => stat(path), catch: (e) => e }).pipe(
    Effect.map((s) => (s.isFile() ? Option.some({ path, size: s.size, mtimeMs: s.mtimeMs, origin }) : Option.none())),
    Effect.catchAll((e) => {
      const code = (e as { code?: unknown }).code
      return code === "ENOENT" || code === "ENOTDIR"
        ? Effect.succeedNone
        : Effect.fail(new DatasetError({ message: `cannot inspect ${path} (${reasonOf(e)}): check its permissions` }))
    })
  )

const locateFile = (path: string): Effect.Effect<Located, DatasetError> =>
  Effect.gen(function* () {
    const absolute = resolve(path)
    const found = yield* locateAt(absolute, "file")
    if (Option.isNone(found)) {
      return yield* new DatasetError({
        message: `file:${path} not found (looked for ${absolute}): check the path after "file:"`
      })
    }
    return found.value
  })

const cachedCorpusPath = (settings: Settings, kind: NamedDataset): string =>
  join(settings.cacheDir, kind, corpora[kind].file)

const dataDirLayout = (kind: NamedDataset): string => {
  const file = `DIR/${kind}/${corpora[kind].file}`
  return corpora[kind].zipped ? `${file} or ${file}.zip` : file
}

/** A local copy in the data directory, else the cache's copy; none when neither exists (then it is fetched). */
const findLocalCorpus = (settings: Settings, kind: NamedDataset): Effect.Effect<Option.Option<Located>, DatasetError> =>
  Effect.gen(function* () {
    if (settings.dataDir !== null) {
      const local = yield* locateAt(join(settings.dataDir, kind, corpora[kind].file), "data-dir")
      if (Option.isSome(local)) return local
    }
    return yield* locateAt(cachedCorpusPath(settings, kind), "cache")
  })

const locateFetched = (settings: Settings, kind: NamedDataset): Effect.Effect<Located, DatasetError> =>
  locateAt(cachedCorpusPath(settings, kind), "cache").pipe(
    Effect.flatMap(
      Option.match({
        onSome: Effect.succeed,
        onNone: () =>
          new DatasetError({
            message:
              `${cachedCorpusPath(settings, kind)} vanished right after it was written: ` +
              `check that nothing else cleans the cache directory`
          })
      })
    )
  )

/** Unpack the data directory's zip when there is one (no network), else download. */
const fetchCorpus = (settings: Settings, kind: NamedDataset): Effect.Effect<void, DatasetError> =>
  Effect.gen(function* () {
    const corpus = corpora[kind]
    const target = {
      destination: cachedCorpusPath(settings, kind),
      member: corpus.zipped ? corpus.file : null,
      expected: settings.expected[kind]
    }
    if (settings.dataDir !== null && corpus.zipped) {
      const zip = join(settings.dataDir, kind, `${corpus.file}.zip`)
      if (Option.isSome(yield* locateAt(zip, "data-dir"))) {
        const fix = `Replace it with a good copy of ${corpus.url}, or remove it to let qlr download ${kind}.`
        return yield* extractLocalZip({ source: zip, fix }, target)
      }
    }
    const url = settings.urls[kind]
    const searched = settings.dataDir === null ? "" : ` (${settings.dataDir} has none)`
    const origin: Origin = {
      source: url,
      fix:
        `No local copy of ${kind} was found${searched}: download ${url} where there is network access, ` +
        `put it at ${dataDirLayout(kind)} and pass --data-dir DIR (or set QLR_DATA_DIR); or retry later.`
    }
    yield* download(origin, target)
  })

/** The named corpus verified against its expected size and checksum; a bad cached copy is fetched again. */
const readVerifiedCorpus = (
  settings: Settings,
  kind: NamedDataset,
  located: Located
): Effect.Effect<{ readonly bytes: Uint8Array; readonly located: Located; readonly sha256: string }, DatasetError> =>
  Effect.gen(function* () {
    const bytes = yield* readBytes(located.path, kind)
    const digest = digestOf(bytes)
    const problem = verificationProblem(digest, settings.expected[kind])
    if (problem === null) return { bytes, located, sha256: digest.sha256 }
    if (located.origin === "cache") {
      yield* Effect.logWarning(`the cached copy ${located.path} failed verification (${problem}); fetching it again`)
      yield* Effect.promise(() => rm(located.path, { force: true }))
      yield* fetchCorpus(settings, kind)
      const fetched = yield* locateFetched(settings, kind)
      const again = yield* readBytes(fetched.path, kind)
      return { bytes: again, located: fetched, sha256: sha256Of(again) }
    }
    return yield* new DatasetError({
      message:
        `${located.path} is not the expected ${kind}: ${problem}. Replace it with the file from ${corpora[kind].url} ` +
        `(unzipped, or as ${corpora[kind].file}.zip), or remove it to let qlr download ${kind}`
    })
  })

const corpusProblemMessage = (display: string, problem: CorpusProblem): string => {
  switch (problem._tag) {
    case "Empty":
      return `${display} is empty: there is nothing to train on; give a non-empty file`
    case "InvalidUtf8":
      return (
        `${display} is not UTF-8 text (invalid byte sequence at byte ${problem.offset}); ` +
        `to read it as bytes, pass --encoding bytes`
      )
    case "NulByte":
      return (
        `${display} contains NUL bytes (first at byte ${problem.offset}), so it looks binary; ` +
        `to read it as bytes, pass --encoding bytes`
      )
    case "VocabularyTooLarge":
      return (
        `${display} has ${problem.size} distinct characters, more than the ${maxVocabularySize} token ids qlr supports; ` +
        `pass --encoding bytes to read it as bytes (at most 256 symbols)`
      )
  }
}

/** One directory per source and encoding; a `file:` input is keyed by its absolute path. */
const preparedDir = (settings: Settings, source: DatasetSource, encoding: Encoding): string => {
  const absolute = source.kind === "file" ? resolve(source.path) : null
  const key =
    absolute !== null
      ? `file-${basename(absolute).replace(/[^A-Za-z0-9._-]/g, "_")}-${sha256Of(Buffer.from(absolute)).slice(0, 16)}`
      : source.kind
  return join(settings.cacheDir, "prepared", `${key}-${encoding}`)
}

/** View the token file's bytes as token ids, copying only when a Uint16 view would be misaligned. */
const tokensFromBytes = (bytes: Uint8Array, bytesPerToken: 1 | 2): TokenArray => {
  if (bytesPerToken === 1) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2)
  return new Uint16Array(bytes.slice().buffer)
}

const bytesOfTokens = (tokens: TokenArray): Uint8Array => new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength)

/**
 * The cached preparation when it is current and intact; none means build it
 * (again). With no source at hand (`null`: a named corpus prepared earlier
 * from a copy that is not found now), the tokens' own checksum vouches for it.
 */
const readPrepared = (
  dir: string,
  located: Located | null
): Effect.Effect<Option.Option<{ readonly meta: PreparedMeta; readonly tokens: TokenArray }>, never> =>
  Effect.gen(function* () {
    const metaText = yield* Effect.tryPromise(() => readFile(join(dir, "meta.json"), "utf8"))
    const meta = yield* Schema.decodeUnknown(Schema.parseJson(PreparedMeta))(metaText)
    const unchanged =
      located === null ||
      (meta.source.path === located.path && meta.source.size === located.size && meta.source.mtimeMs === located.mtimeMs)
    if (!unchanged) return Option.none()
    const tokenFile = join(dir, "tokens.bin")
    const bytes = yield* Effect.tryPromise(() => readFile(tokenFile))
    const { train, val, test } = meta.splits
    const expectedLength = (train + val + (test ?? 0)) * meta.bytesPerToken
    if (bytes.length !== expectedLength || sha256Of(bytes) !== meta.tokensSha256) {
      yield* Effect.logWarning(`the prepared cache ${tokenFile} is damaged (size or checksum mismatch); rebuilding it`)
      return Option.none()
    }
    return Option.some({ meta, tokens: tokensFromBytes(bytes, meta.bytesPerToken) })
  }).pipe(Effect.orElseSucceed(() => Option.none()))

const buildPrepared = (
  settings: Settings,
  name: string,
  source: DatasetSource,
  located: Located,
  encoding: Encoding,
  dir: string
): Effect.Effect<{ readonly meta: PreparedMeta; readonly tokens: TokenArray }, DatasetError> =>
  Effect.gen(function* () {
    const { bytes, located: verified, sha256 } =
      source.kind === "file"
        ? yield* readBytes(located.path, "file").pipe(Effect.map((b) => ({ bytes: b, located, sha256: sha256Of(b) })))
        : yield* readVerifiedCorpus(settings, source.kind, located)
    const encoded = encodeCorpus(bytes, encoding)
    if (Either.isLeft(encoded)) {
      const display = source.kind === "file" ? `file:${source.path}` : verified.path
      return yield* new DatasetError({ message: corpusProblemMessage(display, encoded.left) })
    }
    const { symbols, tokens } = encoded.right
    const tokenBytes = bytesOfTokens(tokens)
    const meta: PreparedMeta = {
      formatVersion,
      dataset: name,
      encoding,
      symbols,
      splits: splitSizes(source.kind, tokens.length),
      bytesPerToken: tokens.BYTES_PER_ELEMENT === 1 ? 1 : 2,
      tokensSha256: sha256Of(tokenBytes),
      source: { path: verified.path, size: verified.size, mtimeMs: verified.mtimeMs, sha256 }
    }
    // tokens first: a meta.json always describes the tokens.bin beside it or fails its checksum
    yield* writeFileAtomic(join(dir, "tokens.bin"), tokenBytes, cacheWriteFailed)
    yield* writeFileAtomic(join(dir, "meta.json"), jsonText(meta), cacheWriteFailed)
    return { meta, tokens }
  })

const datasetOf = (
  name: string,
  encoding: Encoding,
  { meta, tokens }: { readonly meta: PreparedMeta; readonly tokens: TokenArray },
  dir: string
): CachedDataset => ({
  name,
  encoding,
  symbols: meta.symbols,
  ...splitTokens(tokens, meta.splits),
  sourceSha256: meta.source.sha256,
  cachePath: dir
})

const load =
  (settings: Settings) =>
  (name: string, requested: Encoding): Effect.Effect<CachedDataset, DatasetError> =>
    Effect.gen(function* () {
      const parsed = parseDatasetName(name)
      if (Either.isLeft(parsed)) return yield* new DatasetError({ message: parsed.left })
      const source = parsed.right
      const encoding = effectiveEncoding(source, requested)
      const dir = preparedDir(settings, source, encoding)
      let located: Located
      if (source.kind === "file") located = yield* locateFile(source.path)
      else {
        const local = yield* findLocalCorpus(settings, source.kind)
        if (Option.isSome(local)) located = local.value
        else {
          // Prepared earlier from a copy not at hand now (a resumed run without --data-dir): no network needed.
          const prepared = yield* readPrepared(dir, null)
          if (Option.isSome(prepared)) return datasetOf(name, encoding, prepared.value, dir)
          yield* fetchCorpus(settings, source.kind)
          located = yield* locateFetched(settings, source.kind)
        }
      }
      const cached = yield* readPrepared(dir, located)
      const prepared = Option.isSome(cached) ? cached.value : yield* buildPrepared(settings, name, source, located, encoding, dir)
      return datasetOf(name, encoding, prepared, dir)
    })

const make = (options: FileDatasetReaderOptions): Effect.Effect<DatasetReader["Type"], DatasetError> =>
  Effect.gen(function* () {
    const env = yield* environment.pipe(
      Effect.mapError((e) => new DatasetError({ message: `cannot read the dataset settings from the environment: ${e}` }))
    )
    const dataDir = options.dataDir ?? (env.dataDir || null)
    const cacheDir =
      options.cacheDir ??
      (env.cacheDir || (env.xdgCacheHome ? join(env.xdgCacheHome, "qlr") : join(homedir(), ".cache", "qlr")))
    const settings: Settings = {
      dataDir: dataDir === null ? null : resolve(dataDir),
      cacheDir: resolve(cacheDir),
      urls: {
        shakespeare_char: options.urls?.shakespeare_char ?? corpora.shakespeare_char.url,
        enwik8: options.urls?.enwik8 ?? corpora.enwik8.url,
        text8: options.urls?.text8 ?? corpora.text8.url
      },
      expected: {
        shakespeare_char: options.expected?.shakespeare_char ?? corpora.shakespeare_char.expected,
        enwik8: options.expected?.enwik8 ?? corpora.enwik8.expected,
        text8: options.expected?.text8 ?? corpora.text8.expected
      }
    }
    return DatasetReader.of({ load: load(settings) })
  })

/** The DatasetReader backed by files: local copies, a cache, downloads (see the module comment). */
export const FileDatasetReader = {
  /** The file-backed DatasetReader; every option falls back to its environment variable, then the default. */
  layer: (options: FileDatasetReaderOptions = {}): Layer.Layer<DatasetReader, DatasetError> =>
    Layer.effect(DatasetReader, make(options))
}
