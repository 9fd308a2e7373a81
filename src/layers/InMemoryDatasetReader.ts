/**
 * A DatasetReader over tokens already in memory: for tests, examples, and
 * programs that hold their corpus themselves instead of reading a file.
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import type { TokenArray } from "../domain/Batches.js"
import { DatasetReader, type PreparedDataset } from "../services/DatasetReader.js"

/** DatasetReader layers over tokens in memory, and the datasets they serve. */
export const InMemoryDatasetReader = {
  /**
   * A dataset of `tokens` (ids into `symbols`, the vocabulary's code points):
   * the first 90% train, the rest val, as Tiny Shakespeare; no test split.
   */
  dataset: (tokens: TokenArray, symbols: ReadonlyArray<number>, name = "in-memory"): PreparedDataset => {
    const cut = Math.floor(tokens.length * 0.9)
    return {
      name,
      encoding: "chars",
      symbols,
      train: tokens.subarray(0, cut),
      val: tokens.subarray(cut),
      test: null,
      sourceSha256: createHash("sha256").update(tokens).digest("hex")
    }
  },
  /** Serve `data` whatever dataset name is asked for. */
  layer: (data: PreparedDataset): Layer.Layer<DatasetReader> => Layer.succeed(DatasetReader, { load: () => Effect.succeed(data) })
}
