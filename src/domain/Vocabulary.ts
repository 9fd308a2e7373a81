/**
 * Corpus to tokens and back, as pure functions: dataset names, the
 * vocabulary (sorted distinct symbols, token id = index), encoding a whole
 * corpus into a compact typed array, decoding, and the split sizes of each
 * dataset kind (SPEC §2).
 *
 * A corpus is always handled as bytes: `chars` decodes strict UTF-8 straight
 * from the bytes into code points, so a 100 MB corpus never becomes a string
 * or an array of JS values per symbol.
 * @since 0.1.0
 */
import { Either } from "effect"
import type { TokenArray } from "./Batches.js"

/** How a corpus becomes symbols: Unicode characters, or bytes (vocabulary <= 256). */
export type Encoding = "chars" | "bytes"

/** The corpora qlr knows by name. */
export type NamedDataset = "shakespeare_char" | "enwik8" | "text8"

/** Every {@link NamedDataset}, in the order messages list them. */
export const namedDatasets: ReadonlyArray<NamedDataset> = ["shakespeare_char", "enwik8", "text8"]

/** Where a dataset name points: a named corpus, or any file (`file:PATH`). */
export type DatasetSource =
  | { readonly kind: NamedDataset }
  | { readonly kind: "file"; readonly path: string }

/** Read `shakespeare_char`, `enwik8`, `text8` or `file:PATH`; the failure is a message for the user. */
export const parseDatasetName = (name: string): Either.Either<DatasetSource, string> => {
  if (name.startsWith("file:")) {
    const path = name.slice("file:".length)
    return path.length > 0
      ? Either.right({ kind: "file", path })
      : Either.left(`dataset "file:" names no file: write file:PATH, for example file:data/input.txt`)
  }
  const named = namedDatasets.find((d) => d === name)
  return named !== undefined
    ? Either.right({ kind: named })
    : Either.left(`unknown dataset "${name}": use shakespeare_char, enwik8, text8 or file:PATH`)
}

/** enwik8 is always read as bytes (it is not valid UTF-8 throughout); every other source as asked. */
export const effectiveEncoding = (source: DatasetSource, requested: Encoding): Encoding =>
  source.kind === "enwik8" ? "bytes" : requested

/** Token ids must fit in a Uint16Array. */
export const maxVocabularySize = 65_535

/** The symbols of a corpus and how to read them. */
export interface Vocabulary {
  readonly encoding: Encoding
  /** Code points (chars) or byte values (bytes), sorted; token id = index. */
  readonly symbols: ReadonlyArray<number>
}

/** A whole corpus as token ids. */
export interface EncodedCorpus extends Vocabulary {
  readonly tokens: TokenArray
}

/** Why a corpus cannot be encoded; the caller words the message, knowing the source. */
export type CorpusProblem =
  | { readonly _tag: "Empty" }
  | { readonly _tag: "InvalidUtf8"; readonly offset: number }
  | { readonly _tag: "NulByte"; readonly offset: number }
  | { readonly _tag: "VocabularyTooLarge"; readonly size: number }

/** Encode a whole corpus: build its vocabulary, then map every symbol to its id. */
export const encodeCorpus = (bytes: Uint8Array, encoding: Encoding): Either.Either<EncodedCorpus, CorpusProblem> => {
  if (bytes.length === 0) return Either.left({ _tag: "Empty" })
  // a plain view keeps the hot loops on one array class whether a Buffer or a Uint8Array came in
  const plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
  return encoding === "bytes" ? Either.right(encodeBytes(plain)) : encodeUtf8(plain)
}

const encodeBytes = (bytes: Uint8Array): EncodedCorpus => {
  const present = new Uint8Array(256)
  for (let i = 0; i < bytes.length; i++) present[bytes[i]!] = 1
  const symbols: Array<number> = []
  const idOf = new Uint8Array(256)
  for (let b = 0; b < 256; b++) {
    if (present[b] === 1) {
      idOf[b] = symbols.length
      symbols.push(b)
    }
  }
  const tokens = new Uint8Array(bytes.length)
  for (let i = 0; i < bytes.length; i++) tokens[i] = idOf[bytes[i]!]!
  return { encoding: "bytes", symbols, tokens }
}

const codePointLimit = 0x110000

const encodeUtf8 = (bytes: Uint8Array): Either.Either<EncodedCorpus, CorpusProblem> => {
  // Pass 1 validates and finds the vocabulary; pass 2 fills a typed array sized by it.
  const present = new Uint8Array(codePointLimit)
  let count = 0
  let distinct = 0
  for (let i = 0; i < bytes.length; count++) {
    let codePoint = bytes[i]!
    if (codePoint < 0x80) i++
    else {
      const decoded = decodeMultiByte(bytes, i)
      if (decoded < 0) return Either.left({ _tag: "InvalidUtf8", offset: i })
      codePoint = decoded >>> 3
      i += decoded & 7
    }
    if (present[codePoint] === 0) {
      present[codePoint] = 1
      distinct++
    }
  }
  if (present[0] === 1) return Either.left({ _tag: "NulByte", offset: bytes.indexOf(0) })
  if (distinct > maxVocabularySize) return Either.left({ _tag: "VocabularyTooLarge", size: distinct })
  const symbols: Array<number> = []
  const idOf = new Uint16Array(codePointLimit)
  for (let c = 0; c < codePointLimit; c++) {
    if (present[c] === 1) {
      idOf[c] = symbols.length
      symbols.push(c)
    }
  }
  const tokens = symbols.length <= 256 ? new Uint8Array(count) : new Uint16Array(count)
  for (let i = 0, next = 0; i < bytes.length; next++) {
    const b0 = bytes[i]!
    if (b0 < 0x80) {
      tokens[next] = idOf[b0]!
      i++
    } else {
      const decoded = decodeMultiByte(bytes, i)
      tokens[next] = idOf[decoded >>> 3]!
      i += decoded & 7
    }
  }
  return Either.right({ encoding: "chars", symbols, tokens })
}

/**
 * Decode the multi-byte UTF-8 sequence at `i` strictly (no overlong forms,
 * surrogates or values past U+10FFFF, as TextDecoder's `fatal` mode): returns
 * `codePoint << 3 | length`, or -1 when the sequence is invalid.
 */
const decodeMultiByte = (bytes: Uint8Array, i: number): number => {
  const b0 = bytes[i]!
  let length: number
  let codePoint: number
  let lo = 0x80
  let hi = 0xbf
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    length = 2
    codePoint = b0 & 0x1f
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    length = 3
    codePoint = b0 & 0x0f
    if (b0 === 0xe0) lo = 0xa0
    else if (b0 === 0xed) hi = 0x9f
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    length = 4
    codePoint = b0 & 0x07
    if (b0 === 0xf0) lo = 0x90
    else if (b0 === 0xf4) hi = 0x8f
  } else {
    return -1
  }
  if (i + length > bytes.length) return -1
  for (let k = 1; k < length; k++) {
    const b = bytes[i + k]!
    if (b < lo || b > hi) return -1
    lo = 0x80
    hi = 0xbf
    codePoint = (codePoint << 6) | (b & 0x3f)
  }
  return (codePoint << 3) | length
}

/** Encode a short text (a prompt) with an existing vocabulary; fails with the first unknown symbol. */
export const encodeText = (vocabulary: Vocabulary, text: string): Either.Either<TokenArray, string> => {
  const idOf = new Map(vocabulary.symbols.map((symbol, id) => [symbol, id] as const))
  const ids = vocabulary.symbols.length <= 256 ? new Uint8Array(text.length) : new Uint16Array(text.length)
  let next = 0
  // a bytes vocabulary reads the text as latin-1, where code point = byte value
  for (const char of text) {
    const symbol = char.codePointAt(0)!
    const id = idOf.get(symbol)
    if (id === undefined) {
      const hex = symbol.toString(16).toUpperCase().padStart(4, "0")
      return Either.left(`"${String.fromCodePoint(symbol)}" (U+${hex}) is not in the vocabulary`)
    }
    ids[next++] = id
  }
  return Either.right(ids.subarray(0, next))
}

/** Token ids back to text: characters for `chars`, one latin-1 character per byte for `bytes`. */
export const decodeTokens = (vocabulary: Vocabulary, ids: ArrayLike<number>): string => {
  // a byte value read as a code point is its latin-1 character
  const table = vocabulary.symbols.map((symbol) => String.fromCodePoint(symbol))
  const parts: Array<string> = []
  const chunk = 8192
  for (let start = 0; start < ids.length; start += chunk) {
    const end = Math.min(ids.length, start + chunk)
    let part = ""
    for (let i = start; i < end; i++) {
      const symbol = table[ids[i]!]
      if (symbol === undefined) throw new RangeError(`token id ${ids[i]} is outside the vocabulary of ${table.length}`)
      part += symbol
    }
    parts.push(part)
  }
  return parts.join("")
}

/** Symbols in each split; `test` is null where the dataset has no test split. */
export interface SplitSizes {
  readonly train: number
  readonly val: number
  readonly test: number | null
}

/** The published held-out size of enwik8 and text8, each for val and test. */
const heldOutSymbols = 5_000_000

/**
 * SPEC §2: shakespeare_char 90/10 (nanoGPT's `int(n * 0.9)`); enwik8 and text8
 * the last 5M symbols test and the 5M before them val, which is 5% of the
 * 100M corpus, so a shorter stand-in keeps the same 90/5/5 proportions; any
 * other file 90/5/5 with val and test at the end.
 */
export const splitSizes = (kind: DatasetSource["kind"], total: number): SplitSizes => {
  if (kind === "shakespeare_char") {
    const train = Math.floor((total * 9) / 10)
    return { train, val: total - train, test: null }
  }
  const twentieth = Math.floor(total / 20)
  const heldOut = kind === "file" ? twentieth : Math.min(heldOutSymbols, twentieth)
  return { train: total - 2 * heldOut, val: heldOut, test: heldOut }
}

/** The splits as views over one token array (no copies), in corpus order. */
export const splitTokens = (
  tokens: TokenArray,
  sizes: SplitSizes
): { readonly train: TokenArray; readonly val: TokenArray; readonly test: TokenArray | null } => ({
  train: tokens.subarray(0, sizes.train),
  val: tokens.subarray(sizes.train, sizes.train + sizes.val),
  test: sizes.test === null ? null : tokens.subarray(sizes.train + sizes.val, sizes.train + sizes.val + sizes.test)
})
