/**
 * Random training windows, drawn with the run's seeded generator: the same
 * seed gives the same batches. `y` is `x` shifted by one token.
 * @since 0.1.0
 */
import { nextInt, type RngState } from "./Rng.js"

/** Token ids of one split, 1 or 2 bytes per token. */
export type TokenArray = Uint8Array | Uint16Array

/** A batch of `batchSize` windows of `blockSize` tokens, row-major. */
export interface Batch {
  readonly batchSize: number
  readonly blockSize: number
  readonly x: Int32Array
  readonly y: Int32Array
}

/** Draw a batch of random windows from `data`; returns the batch and the next RNG state. */
export const sampleBatch = (
  data: TokenArray,
  batchSize: number,
  blockSize: number,
  rng: RngState
): readonly [Batch, RngState] => {
  const x = new Int32Array(batchSize * blockSize)
  const y = new Int32Array(batchSize * blockSize)
  const windows = data.length - blockSize
  if (windows < 1) throw new RangeError(`split of ${data.length} tokens is too short for block_size ${blockSize}`)
  let state = rng
  for (let b = 0; b < batchSize; b++) {
    const [start, next] = nextInt(state, windows)
    state = next
    for (let t = 0; t < blockSize; t++) {
      x[b * blockSize + t] = data[start + t]!
      y[b * blockSize + t] = data[start + t + 1]!
    }
  }
  return [{ batchSize, blockSize, x, y }, state]
}

/** Split a batch into `parts` consecutive micro-batches of equal size (gradient accumulation). */
export const splitBatch = (batch: Batch, parts: number): ReadonlyArray<Batch> => {
  const rows = batch.batchSize / parts
  const size = rows * batch.blockSize
  return Array.from({ length: parts }, (_, i) => ({
    batchSize: rows,
    blockSize: batch.blockSize,
    x: batch.x.subarray(i * size, (i + 1) * size),
    y: batch.y.subarray(i * size, (i + 1) * size)
  }))
}
