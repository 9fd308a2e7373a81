/**
 * Datasets: vocabulary and splits, local copies, the real download path
 * against a local HTTP server serving zips of the corpus heads in
 * ../shared/data, every fault case, the token cache, and batching.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs"
import { copyFile, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { ConfigProvider, Effect, Either } from "effect"
import { zipSync } from "fflate"
import { sampleBatch } from "../src/domain/Batches.js"
import { deriveSeed, nextInt } from "../src/domain/Rng.js"
import {
  decodeTokens,
  encodeCorpus,
  encodeText,
  maxVocabularySize,
  parseDatasetName,
  splitSizes
} from "../src/domain/Vocabulary.js"
import { type CachedDataset, FileDatasetReader, type FileDatasetReaderOptions } from "../src/layers/FileDatasetReader.js"
import { InMemoryDatasetReader } from "../src/layers/InMemoryDatasetReader.js"
import { prepare } from "../src/programs/prepare.js"
import { DatasetReader, type Encoding } from "../src/services/DatasetReader.js"
import { qlrBin } from "./support/cli.js"

const sharedData = resolve(dirname(fileURLToPath(import.meta.url)), "../../shared/data")
const shakespearePath = join(sharedData, "shakespeare_char/input.txt")
const enwik8HeadPath = join(sharedData, "enwik8/enwik8_head_1M")
const text8HeadPath = join(sharedData, "text8/text8_head_689K")
const shakespeare = readFileSync(shakespearePath)
const enwik8Head = readFileSync(enwik8HeadPath)
const text8Head = readFileSync(text8HeadPath)
// README sha256 of the heads: they stand in for the full corpora
const enwik8HeadExpected = { size: 1_000_000, sha256: "369b688978f649681136198fb96db14c1616756260c55fb4b65e9bc049552cad" }
const text8HeadExpected = { size: 689_414, sha256: "850d1c85b11826889b8b41009cfae1153d22b07f7dc73c7d21ee486afc7946fd" }

const execFileAsync = promisify(execFile)

const temps: Array<string> = []
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "qlr-datasets-"))
  temps.push(dir)
  return dir
}

/** Every regular file under `dir`: a failed download or preparation must leave none. */
const filesUnder = async (dir: string): Promise<Array<string>> => {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as Array<string>)
  const files: Array<string> = []
  for (const entry of entries) if ((await stat(join(dir, entry))).isFile()) files.push(entry)
  return files
}

// the developer's own QLR_DATA_DIR / QLR_CACHE_DIR must not leak into the tests
const noEnvironment = ConfigProvider.fromMap(new Map())

const load = (options: FileDatasetReaderOptions, name: string, encoding: Encoding = "chars") =>
  Effect.flatMap(DatasetReader, (reader) => reader.load(name, encoding)).pipe(
    Effect.map((dataset) => dataset as CachedDataset),
    Effect.provide(FileDatasetReader.layer(options)),
    Effect.withConfigProvider(noEnvironment)
  )

const loadError = (options: FileDatasetReaderOptions, name: string, encoding: Encoding = "chars") =>
  load(options, name, encoding).pipe(
    Effect.flip,
    Effect.map((error) => {
      expect(error._tag).toBe("DatasetError")
      return error.message
    })
  )

/** Every token of the corpus in order, as one typed array (deep-equality on 1M-element JS arrays is slow). */
const allTokens = (d: CachedDataset): Uint8Array | Uint16Array => {
  const splits = [d.train, d.val, ...(d.test === null ? [] : [d.test])]
  const total = splits.reduce((n, split) => n + split.length, 0)
  const all = d.train instanceof Uint16Array ? new Uint16Array(total) : new Uint8Array(total)
  let offset = 0
  for (const split of splits) {
    all.set(split, offset)
    offset += split.length
  }
  return all
}
const tokenDigest = (d: CachedDataset): string => createHash("sha256").update(allTokens(d)).digest("hex")

const distinctBytes = (bytes: Uint8Array): number => new Set(bytes).size

// ---- a local HTTP server standing in for the canonical hosts ----

const text8Zip = zipSync({ text8: text8Head })
const enwik8Zip = zipSync({ enwik8: enwik8Head })

/** A zip whose first deflate block header (after the 30-byte local header and the name) is invalid. */
const corruptZip = (() => {
  const zip = text8Zip.slice()
  zip[30 + "text8".length] = 0xff
  return zip
})()

type Handler = (res: import("node:http").ServerResponse) => void
const send = (body: Uint8Array): Handler => (res) => {
  res.writeHead(200, { "content-length": body.length })
  res.end(body)
}
const routes: Record<string, Handler> = {
  "/text8.zip": send(text8Zip),
  "/enwik8.zip": send(enwik8Zip),
  "/input.txt": send(shakespeare),
  "/truncated.zip": send(text8Zip.subarray(0, Math.floor(text8Zip.length / 2))),
  "/corrupt.zip": send(corruptZip),
  "/not-a-zip.zip": send(shakespeare.subarray(0, 10_000)),
  "/server-error": (res) => {
    res.writeHead(500)
    res.end("boom")
  },
  "/stalled.zip": (res) => {
    res.writeHead(200, { "content-length": text8Zip.length })
    res.write(text8Zip.subarray(0, 100_000))
  },
  "/cut.zip": (res) => {
    res.writeHead(200, { "content-length": text8Zip.length })
    res.write(text8Zip.subarray(0, 100_000), () => res.destroy())
  }
}

let server: Server
let base = ""
/** A URL where nothing listens: the machine is "offline" for it. */
let unreachable = ""

beforeAll(async () => {
  server = createServer((req, res) => {
    const handler = routes[req.url ?? ""]
    if (handler === undefined) {
      res.writeHead(404)
      res.end("not found")
    } else handler(res)
  })
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const closed = createServer()
  await new Promise<void>((done) => closed.listen(0, "127.0.0.1", done))
  unreachable = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`
  await new Promise((done) => closed.close(done))
})

afterAll(async () => {
  server.closeAllConnections()
  await new Promise((done) => server.close(done))
  await Promise.all(temps.map((dir) => rm(dir, { recursive: true, force: true })))
})

const offlineUrls = () => ({
  shakespeare_char: `${unreachable}/input.txt`,
  enwik8: `${unreachable}/enwik8.zip`,
  text8: `${unreachable}/text8.zip`
})

describe("Vocabulary", () => {
  it("chars: sorted code points, Uint8 ids, exact round trip with multi-byte characters", () => {
    const text = "héllo wörld ∑ 🎉 héllo"
    const encoded = Either.getOrThrow(encodeCorpus(new TextEncoder().encode(text), "chars"))
    expect(encoded.symbols).toEqual([...new Set(Array.from(text, (c) => c.codePointAt(0)!))].sort((a, b) => a - b))
    expect(encoded.tokens).toBeInstanceOf(Uint8Array)
    expect(encoded.tokens.length).toBe(Array.from(text).length)
    expect(decodeTokens(encoded, encoded.tokens)).toBe(text)
    expect(Either.getOrThrow(encodeText(encoded, text))).toEqual(encoded.tokens)
    expect(Either.getLeft(encodeText(encoded, "hello!"))._tag).toBe("Some")
  })

  it("bytes: every byte value, decoded as latin-1", () => {
    const bytes = Uint8Array.from({ length: 512 }, (_, i) => (i * 7) % 256)
    const encoded = Either.getOrThrow(encodeCorpus(bytes, "bytes"))
    expect(encoded.symbols).toEqual(Array.from({ length: 256 }, (_, i) => i))
    expect(decodeTokens(encoded, encoded.tokens)).toBe(Buffer.from(bytes).toString("latin1"))
  })

  it("strict UTF-8: rejects what TextDecoder's fatal mode rejects, at the right offset", () => {
    const invalid = [[0x80], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xf0, 0x80, 0x80, 0x80]]
    for (const sequence of invalid) {
      const bytes = Uint8Array.from([0x61, ...sequence])
      expect(() => new TextDecoder("utf-8", { fatal: true }).decode(bytes)).toThrow()
      expect(encodeCorpus(bytes, "chars")).toEqual(Either.left({ _tag: "InvalidUtf8", offset: 1 }))
    }
    expect(encodeCorpus(Uint8Array.from([0x61, 0x00]), "chars")).toEqual(Either.left({ _tag: "NulByte", offset: 1 }))
    expect(encodeCorpus(new Uint8Array(0), "bytes")).toEqual(Either.left({ _tag: "Empty" }))
  })

  it("vocabulary: 65,535 symbols fit in Uint16 ids, 65,536 are refused", () => {
    const codePoints = (n: number) => {
      const out: Array<number> = []
      for (let c = 1; out.length < n; c++) if (c < 0xd800 || c > 0xdfff) out.push(c)
      return new TextEncoder().encode(String.fromCodePoint(...out))
    }
    const largest = Either.getOrThrow(encodeCorpus(codePoints(maxVocabularySize), "chars"))
    expect(largest.tokens).toBeInstanceOf(Uint16Array)
    expect(largest.tokens[maxVocabularySize - 1]).toBe(maxVocabularySize - 1)
    expect(encodeCorpus(codePoints(maxVocabularySize + 1), "chars")).toEqual(
      Either.left({ _tag: "VocabularyTooLarge", size: maxVocabularySize + 1 })
    )
  })

  it("split sizes per dataset kind (SPEC §2)", () => {
    expect(splitSizes("shakespeare_char", 1_115_394)).toEqual({ train: 1_003_854, val: 111_540, test: null })
    expect(splitSizes("enwik8", 100_000_000)).toEqual({ train: 90_000_000, val: 5_000_000, test: 5_000_000 })
    expect(splitSizes("text8", 100_000_000)).toEqual({ train: 90_000_000, val: 5_000_000, test: 5_000_000 })
    expect(splitSizes("text8", 689_414)).toEqual({ train: 620_474, val: 34_470, test: 34_470 })
    expect(splitSizes("file", 1_000_000)).toEqual({ train: 900_000, val: 50_000, test: 50_000 })
  })

  it("dataset names", () => {
    expect(parseDatasetName("text8")).toEqual(Either.right({ kind: "text8" }))
    expect(parseDatasetName("file:a/b.txt")).toEqual(Either.right({ kind: "file", path: "a/b.txt" }))
    expect(Either.isLeft(parseDatasetName("file:"))).toBe(true)
    expect(parseDatasetName("wikitext")).toEqual(Either.left(expect.stringContaining("shakespeare_char, enwik8, text8 or file:PATH")))
  })
})

describe("local copies (no network)", () => {
  it.live("shakespeare_char from --data-dir: 65 symbols, 1,003,854 / 111,540, no test, exact round trip", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const d = yield* load({ dataDir: sharedData, cacheDir, urls: offlineUrls() }, "shakespeare_char")
      expect(d.encoding).toBe("chars")
      expect(d.symbols.length).toBe(65)
      expect([d.train.length, d.val.length, d.test]).toEqual([1_003_854, 111_540, null])
      expect(d.sourceSha256).toBe("86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")
      expect(decodeTokens(d, allTokens(d))).toBe(shakespeare.toString("utf8"))
      // the data directory's copy is used in place, not copied into the cache
      expect(yield* Effect.promise(() => filesUnder(cacheDir))).toEqual(
        expect.not.arrayContaining([expect.stringContaining("input.txt")])
      )
    }))

  it.live("file: enwik8 head as bytes: 90/5/5 split, latin-1 round trip", () =>
    Effect.gen(function* () {
      const d = yield* load({ cacheDir: tempDir() }, `file:${enwik8HeadPath}`, "bytes")
      expect(d.symbols.length).toBe(distinctBytes(enwik8Head))
      expect([d.train.length, d.val.length, d.test?.length]).toEqual([900_000, 50_000, 50_000])
      expect(d.train).toBeInstanceOf(Uint8Array)
      expect(decodeTokens(d, allTokens(d))).toBe(enwik8Head.toString("latin1"))
    }))

  it.live("file: text8 head as chars: 27 symbols, 90/5/5 split, round trip", () =>
    Effect.gen(function* () {
      const d = yield* load({ cacheDir: tempDir() }, `file:${text8HeadPath}`)
      expect(d.symbols).toEqual([32, ...Array.from({ length: 26 }, (_, i) => 97 + i)])
      expect([d.train.length, d.val.length, d.test?.length]).toEqual([620_474, 34_470, 34_470])
      expect(decodeTokens(d, allTokens(d))).toBe(text8Head.toString("utf8"))
    }))

  it.live("enwik8 from DIR/enwik8/enwik8.zip, always as bytes, found through QLR_DATA_DIR and QLR_CACHE_DIR", () =>
    Effect.gen(function* () {
      const dataDir = tempDir()
      const cacheDir = tempDir()
      yield* Effect.promise(async () => {
        await mkdir(join(dataDir, "enwik8"))
        await writeFile(join(dataDir, "enwik8/enwik8.zip"), enwik8Zip)
      })
      const environment = ConfigProvider.fromMap(new Map([["QLR_DATA_DIR", dataDir], ["QLR_CACHE_DIR", cacheDir]]))
      const d = yield* Effect.flatMap(DatasetReader, (reader) => reader.load("enwik8", "chars")).pipe(
        Effect.provide(FileDatasetReader.layer({ urls: offlineUrls(), expected: { enwik8: enwik8HeadExpected } })),
        Effect.withConfigProvider(environment)
      )
      expect(d.encoding).toBe("bytes")
      expect(d.symbols.length).toBe(distinctBytes(enwik8Head))
      expect([d.train.length, d.val.length, d.test?.length]).toEqual([900_000, 50_000, 50_000])
      expect(readFileSync(join(cacheDir, "enwik8/enwik8")).equals(enwik8Head)).toBe(true)
    }))

  it.live("a data-dir copy that is not the expected file is refused, naming the fix", () =>
    Effect.gen(function* () {
      const dataDir = tempDir()
      const cacheDir = tempDir()
      yield* Effect.promise(async () => {
        await mkdir(join(dataDir, "text8"))
        await copyFile(text8HeadPath, join(dataDir, "text8/text8"))
      })
      const message = yield* loadError({ dataDir, cacheDir, urls: offlineUrls() }, "text8")
      expect(message).toMatch(/text8 is not the expected text8: its size is 689414 bytes, expected 100000000/)
      expect(message).toContain("http://mattmahoney.net/dc/text8.zip")
      expect(yield* Effect.promise(() => filesUnder(cacheDir))).toEqual([])
    }))

  it.live("the prepare program summarises vocabulary, splits and cache", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const summary = yield* prepare(`file:${text8HeadPath}`, "chars").pipe(
        Effect.provide(FileDatasetReader.layer({ cacheDir })),
        Effect.withConfigProvider(noEnvironment)
      )
      expect(summary).toMatchObject({ vocabSize: 27, train: 620_474, val: 34_470, test: 34_470, encoding: "chars" })
      expect(summary.cachePath?.startsWith(cacheDir)).toBe(true)
    }))
})

describe("file: input faults", () => {
  const writeTemp = (name: string, content: Uint8Array | string): string => {
    const path = join(tempDir(), name)
    writeFileSync(path, content)
    return path
  }

  it.live("file not found", () =>
    Effect.gen(function* () {
      const message = yield* loadError({ cacheDir: tempDir() }, "file:/no/such/corpus.txt")
      expect(message).toBe(`file:/no/such/corpus.txt not found (looked for /no/such/corpus.txt): check the path after "file:"`)
    }))

  it.live("empty file", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const path = writeTemp("empty.txt", "")
      expect(yield* loadError({ cacheDir }, `file:${path}`)).toMatch(/is empty: there is nothing to train on/)
      expect(yield* Effect.promise(() => filesUnder(cacheDir))).toEqual([])
    }))

  it.live("binary input in chars mode suggests --encoding bytes; bytes mode reads it", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const withNul = writeTemp("nul.bin", Uint8Array.from([0x61, 0x62, 0x00, 0x63]))
      const notUtf8 = writeTemp("latin1.txt", Buffer.from("caf\u00e9", "latin1"))
      expect(yield* loadError({ cacheDir }, `file:${withNul}`)).toMatch(/contains NUL bytes \(first at byte 2\).*--encoding bytes/)
      expect(yield* loadError({ cacheDir }, `file:${notUtf8}`)).toMatch(/is not UTF-8 text .* at byte 3.*--encoding bytes/)
      expect(yield* Effect.promise(() => filesUnder(cacheDir))).toEqual([])
      const asBytes = yield* load({ cacheDir }, `file:${withNul}`, "bytes")
      expect(asBytes.symbols).toEqual([0, 0x61, 0x62, 0x63])
    }))

  it.live("a vocabulary over 65,535 symbols", () =>
    Effect.gen(function* () {
      const codePoints: Array<number> = []
      for (let c = 1; codePoints.length <= maxVocabularySize; c++) if (c < 0xd800 || c > 0xdfff) codePoints.push(c)
      const path = writeTemp("huge-vocabulary.txt", String.fromCodePoint(...codePoints))
      expect(yield* loadError({ cacheDir: tempDir() }, `file:${path}`)).toMatch(
        /has 65536 distinct characters, more than the 65535 token ids qlr supports; pass --encoding bytes/
      )
    }))
})

describe("token cache", () => {
  const tokenFile = (d: CachedDataset) => join(d.cachePath, "tokens.bin")
  const metaFile = (d: CachedDataset) => join(d.cachePath, "meta.json")

  it.live("a second load reuses the prepared tokens: nothing is rewritten", () =>
    Effect.gen(function* () {
      const options = { cacheDir: tempDir() }
      const first = yield* load(options, `file:${text8HeadPath}`)
      const before = [statSync(tokenFile(first)).mtimeMs, statSync(metaFile(first)).mtimeMs]
      const meta = JSON.parse(readFileSync(metaFile(first), "utf8"))
      expect(meta).toMatchObject({ formatVersion: 1, bytesPerToken: 1, splits: { train: 620_474, val: 34_470, test: 34_470 } })
      expect(meta.source.sha256).toBe(text8HeadExpected.sha256)
      expect(meta.tokensSha256).toBe(createHash("sha256").update(readFileSync(tokenFile(first))).digest("hex"))
      const second = yield* load(options, `file:${text8HeadPath}`)
      expect([statSync(tokenFile(second)).mtimeMs, statSync(metaFile(second)).mtimeMs]).toEqual(before)
      expect(tokenDigest(second)).toBe(tokenDigest(first))
    }))

  it.live("a named corpus prepared from --data-dir loads later without it, offline; a damaged one is not trusted", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const first = yield* load({ dataDir: sharedData, cacheDir, urls: offlineUrls() }, "shakespeare_char")
      const again = yield* load({ cacheDir, urls: offlineUrls() }, "shakespeare_char")
      expect(tokenDigest(again)).toBe(tokenDigest(first))
      expect(again.sourceSha256).toBe(first.sourceSha256)
      const bytes = readFileSync(tokenFile(first))
      bytes[100] ^= 0xff
      writeFileSync(tokenFile(first), bytes)
      const refused = yield* loadError({ cacheDir, urls: offlineUrls() }, "shakespeare_char")
      expect(refused).toMatch(/cannot download .*--data-dir/s)
    }))

  it.live("a damaged or truncated token file is detected by its checksum and rebuilt", () =>
    Effect.gen(function* () {
      const options = { cacheDir: tempDir() }
      const first = yield* load(options, `file:${text8HeadPath}`)
      const good = readFileSync(tokenFile(first))
      const damaged = Buffer.from(good)
      damaged[1000] = (damaged[1000]! + 1) % 27
      writeFileSync(tokenFile(first), damaged)
      const rebuilt = yield* load(options, `file:${text8HeadPath}`)
      expect(readFileSync(tokenFile(rebuilt)).equals(good)).toBe(true)
      expect(decodeTokens(rebuilt, allTokens(rebuilt))).toBe(text8Head.toString("utf8"))
      writeFileSync(tokenFile(first), good.subarray(0, 100))
      yield* load(options, `file:${text8HeadPath}`)
      expect(readFileSync(tokenFile(rebuilt)).equals(good)).toBe(true)
    }))

  it.live("a changed source file is prepared again", () =>
    Effect.gen(function* () {
      const options = { cacheDir: tempDir() }
      const path = join(tempDir(), "corpus.txt")
      writeFileSync(path, "abababab")
      expect((yield* load(options, `file:${path}`)).symbols.length).toBe(2)
      writeFileSync(path, "abcabcabcabc")
      expect((yield* load(options, `file:${path}`)).symbols.length).toBe(3)
    }))
})

describe("downloads from a local server", () => {
  it.live("text8.zip: streamed, unzipped, verified, prepared; later loads need no network", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const options = { cacheDir, urls: { text8: `${base}/text8.zip` }, expected: { text8: text8HeadExpected } }
      const d = yield* load(options, "text8")
      expect(d.symbols.length).toBe(27)
      expect([d.train.length, d.val.length, d.test?.length]).toEqual([620_474, 34_470, 34_470])
      expect(decodeTokens(d, allTokens(d))).toBe(text8Head.toString("utf8"))
      expect(readFileSync(join(cacheDir, "text8/text8")).equals(text8Head)).toBe(true)
      const again = yield* load({ ...options, urls: offlineUrls() }, "text8")
      expect(tokenDigest(again)).toBe(tokenDigest(d))
    }))

  it.live("shakespeare input.txt (plain file) against its published sha256", () =>
    Effect.gen(function* () {
      const d = yield* load({ cacheDir: tempDir(), urls: { shakespeare_char: `${base}/input.txt` } }, "shakespeare_char")
      expect([d.symbols.length, d.train.length, d.val.length, d.test]).toEqual([65, 1_003_854, 111_540, null])
    }))

  it.live("enwik8.zip, read as bytes", () =>
    Effect.gen(function* () {
      const options = { cacheDir: tempDir(), urls: { enwik8: `${base}/enwik8.zip` }, expected: { enwik8: enwik8HeadExpected } }
      const d = yield* load(options, "enwik8", "bytes")
      expect(d.symbols.length).toBe(distinctBytes(enwik8Head))
      expect(d.test?.length).toBe(50_000)
    }))

  const faults: ReadonlyArray<readonly [string, string, RegExp]> = [
    ["HTTP 404", "/missing.zip", /downloading http:\/\/127\.0\.0\.1:\d+\/missing\.zip failed: HTTP 404 Not Found/],
    ["HTTP 500", "/server-error", /failed: HTTP 500 Internal Server Error/],
    ["a truncated archive", "/truncated.zip", /truncated\.zip is a truncated zip archive: it ends before "text8" is complete/],
    ["a corrupt archive", "/corrupt.zip", /corrupt\.zip is a corrupt zip archive \(invalid block type\)/],
    ["a file that is not a zip", "/not-a-zip.zip", /is not a zip archive holding "text8" \(found no zip entries at all\)/],
    ["a connection cut mid-download", "/cut.zip", /the download of .*cut\.zip stopped after \d+ bytes \(UND_ERR_SOCKET: other side closed\)/]
  ]
  for (const [fault, path, pattern] of faults) {
    it.live(`${fault}: one clear error naming the URL and --data-dir, no file left in the cache`, () =>
      Effect.gen(function* () {
        const cacheDir = tempDir()
        const url = `${base}${path}`
        const message = yield* loadError({ cacheDir, urls: { text8: url }, expected: { text8: text8HeadExpected } }, "text8")
        expect(message).toMatch(pattern)
        expect(message).toContain(url)
        expect(message).toContain("--data-dir DIR")
        expect(yield* Effect.promise(() => filesUnder(cacheDir))).toEqual([])
      }))
  }

  it.live("a checksum mismatch: the verified file never reaches the cache", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const expected = { text8: { size: 689_414, md5: "0123456789abcdef0123456789abcdef" } }
      const message = yield* loadError({ cacheDir, urls: { text8: `${base}/text8.zip` }, expected }, "text8")
      expect(message).toMatch(/text8\.zip failed verification: its md5 is [0-9a-f]{32}, expected 0123456789abcdef0123456789abcdef/)
      expect(yield* Effect.promise(() => filesUnder(cacheDir))).toEqual([])
    }))

  it.live("an interrupted download leaves no file in the cache", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const options = { cacheDir, urls: { text8: `${base}/stalled.zip` }, expected: { text8: text8HeadExpected } }
      const outcome = yield* load(options, "text8").pipe(Effect.timeout("300 millis"), Effect.either)
      expect(Either.isLeft(outcome) && outcome.left._tag).toBe("TimeoutException")
      expect(yield* Effect.promise(() => filesUnder(cacheDir))).toEqual([])
    }))

  it.live("a cached download that no longer verifies is fetched again", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const options = { cacheDir, urls: { text8: `${base}/text8.zip` }, expected: { text8: text8HeadExpected } }
      yield* load(options, "text8")
      const cachedCopy = join(cacheDir, "text8/text8")
      writeFileSync(cachedCopy, Buffer.from(text8Head).fill(0x61, 0, 10))
      const d = yield* load(options, "text8")
      expect(readFileSync(cachedCopy).equals(text8Head)).toBe(true)
      expect(decodeTokens(d, allTokens(d))).toBe(text8Head.toString("utf8"))
    }))

  it.live("offline with no local copy: one error naming the URL and the --data-dir option", () =>
    Effect.gen(function* () {
      const cacheDir = tempDir()
      const dataDir = tempDir()
      const message = yield* loadError({ cacheDir, dataDir, urls: offlineUrls() }, "enwik8")
      expect(message).toBe(
        `cannot download ${unreachable}/enwik8.zip (connect ECONNREFUSED ${unreachable.slice("http://".length)}). ` +
          `No local copy of enwik8 was found (${dataDir} has none): download ${unreachable}/enwik8.zip where there is ` +
          `network access, put it at DIR/enwik8/enwik8 or DIR/enwik8/enwik8.zip and pass --data-dir DIR ` +
          `(or set QLR_DATA_DIR); or retry later.`
      )
      expect(yield* Effect.promise(() => filesUnder(cacheDir))).toEqual([])
    }))
})

describe("batches from a prepared split", () => {
  it.live("same seed, same batches; y is x shifted by one; rows are windows of the split", () =>
    Effect.gen(function* () {
      const d = yield* load({ dataDir: sharedData, cacheDir: tempDir(), urls: offlineUrls() }, "shakespeare_char")
      const rng = deriveSeed(1337, "batches")
      const [a, nextA] = sampleBatch(d.train, 4, 16, rng)
      const [b, nextB] = sampleBatch(d.train, 4, 16, rng)
      expect([a.x, a.y, nextA]).toEqual([b.x, b.y, nextB])
      const [c] = sampleBatch(d.train, 4, 16, deriveSeed(1338, "batches"))
      expect(c.x).not.toEqual(a.x)
      const [start] = nextInt(rng, d.train.length - 16)
      expect(Array.from(a.x.subarray(0, 16))).toEqual(Array.from(d.train.subarray(start, start + 16)))
      for (let row = 0; row < 4; row++) {
        for (let t = 0; t < 15; t++) expect(a.y[row * 16 + t]).toBe(a.x[row * 16 + t + 1])
      }
      expect(a.y[15]).toBe(d.train[start + 16])
    }))
})

/** The environment without the developer's QLR_* settings. */
const withoutQlrVariables = (): NodeJS.ProcessEnv =>
  Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("QLR_")))

describe("memory", () => {
  // enwik8 is 100,000,000 bytes; its zip is unpacked by streaming into the
  // cache, so preparation's peak is reading, hashing and encoding the
  // unzipped file: the same work as this file: input of the same size.
  it("preparing a 100 MB corpus as bytes with `qlr prepare` peaks under 1 GB of RSS", async () => {
    const dir = tempDir()
    const corpus = join(dir, "enwik8-sized")
    const head = readFileSync(join(sharedData, "enwik8/enwik8_head_4M"))
    const bytes = Buffer.alloc(100_000_000)
    for (let offset = 0; offset < bytes.length; offset += head.length) head.copy(bytes, offset)
    writeFileSync(corpus, bytes)
    const reportPeak = "data:text/javascript,process.on('exit',()=>process.stderr.write('peak_rss_kb='+process.resourceUsage().maxRSS+'\\n'))"
    const { stdout, stderr } = await execFileAsync(
      process.execPath,
      ["--import", reportPeak, qlrBin, "prepare", "--dataset", `file:${corpus}`, "--encoding", "bytes", "--cache-dir", join(dir, "cache")],
      { env: withoutQlrVariables() }
    )
    expect(JSON.parse(stdout)).toMatchObject({ train: 90_000_000, val: 5_000_000, test: 5_000_000 })
    const peakMb = Number(/peak_rss_kb=(\d+)/.exec(stderr)![1]) / 1024
    expect(peakMb).toBeGreaterThan(100)
    expect(peakMb).toBeLessThan(1024)
  })
})

describe("InMemoryDatasetReader", () => {
  it.effect("splits tokens held in memory 90/10, records their sha256, and serves them for any name", () =>
    Effect.gen(function* () {
      const tokens = Uint8Array.from({ length: 1000 }, (_, i) => i % 5)
      const data = InMemoryDatasetReader.dataset(tokens, [97, 98, 99, 100, 101])
      expect([data.train.length, data.val.length, data.test]).toEqual([900, 100, null])
      expect(data.sourceSha256).toBe(createHash("sha256").update(tokens).digest("hex"))
      const served = yield* Effect.flatMap(DatasetReader, (r) => r.load("anything", "bytes")).pipe(
        Effect.provide(InMemoryDatasetReader.layer(data))
      )
      expect(served).toBe(data)
    })
  )
})
