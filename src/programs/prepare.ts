/**
 * `qlr prepare --dataset NAME`: find or download the corpus, verify it, build
 * its token cache, and say what was prepared.
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { DatasetError } from "../domain/Errors.js"
import { DatasetReader, type Encoding, type PreparedDataset } from "../services/DatasetReader.js"

/** What `qlr prepare` reports. */
export interface PrepareSummary {
  readonly dataset: string
  readonly encoding: Encoding
  readonly vocabSize: number
  readonly train: number
  readonly val: number
  /** null where the dataset has no test split. */
  readonly test: number | null
  readonly sourceSha256: string
  /** The directory of the cached tokens, when the reader keeps one. */
  readonly cachePath: string | null
}

// PreparedDataset has no cache location; the file-backed reader adds one
const cachePathOf = (dataset: PreparedDataset): string | null =>
  "cachePath" in dataset && typeof dataset.cachePath === "string" ? dataset.cachePath : null

/** Load (downloading and preparing on first use) and summarise a dataset. */
export const prepare = (name: string, encoding: Encoding): Effect.Effect<PrepareSummary, DatasetError, DatasetReader> =>
  Effect.gen(function* () {
    const reader = yield* DatasetReader
    const dataset = yield* reader.load(name, encoding)
    return {
      dataset: dataset.name,
      encoding: dataset.encoding,
      vocabSize: dataset.symbols.length,
      train: dataset.train.length,
      val: dataset.val.length,
      test: dataset.test === null ? null : dataset.test.length,
      sourceSha256: dataset.sourceSha256,
      cachePath: cachePathOf(dataset)
    }
  })

const count = (n: number): string => n.toLocaleString("en-US")

/** The summary as the lines `qlr prepare` prints. */
export const formatPrepareSummary = (s: PrepareSummary): string =>
  [
    `${s.dataset} (${s.encoding}): vocabulary ${s.vocabSize} symbols`,
    `splits: train ${count(s.train)}, val ${count(s.val)}, test ${s.test === null ? "none" : count(s.test)}`,
    `source sha256 ${s.sourceSha256}`,
    ...(s.cachePath === null ? [] : [`cache ${s.cachePath}`])
  ].join("\n")
