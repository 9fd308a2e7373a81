/**
 * The DatasetReader service: finds, downloads, verifies, prepares and splits
 * a corpus into token arrays.
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { TokenArray } from "../domain/Batches.js"
import type { DatasetError } from "../domain/Errors.js"

/** How a corpus becomes symbols: Unicode characters, or bytes (vocabulary <= 256). */
export type Encoding = "chars" | "bytes"

/** A corpus ready for training. */
export interface PreparedDataset {
  readonly name: string
  readonly encoding: Encoding
  /** The vocabulary: code points (chars) or byte values (bytes), sorted; token id = index. */
  readonly symbols: ReadonlyArray<number>
  readonly train: TokenArray
  readonly val: TokenArray
  /** Present for datasets with a test split (enwik8, text8, other files). */
  readonly test: TokenArray | null
  /** sha256 of the source file. */
  readonly sourceSha256: string
}

/**
 * The service tag: a program that needs data asks for `DatasetReader`; a
 * layer ({@link FileDatasetReader}, or {@link InMemoryDatasetReader} for
 * a dataset in memory) provides it.
 */
export class DatasetReader extends Context.Tag("qlr/DatasetReader")<
  DatasetReader,
  {
    /** `name` is `shakespeare_char`, `enwik8`, `text8` or `file:PATH`. */
    readonly load: (name: string, encoding: Encoding) => Effect.Effect<PreparedDataset, DatasetError>
  }
>() {}
