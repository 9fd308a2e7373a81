/**
 * A small, pure, seedable random number generator (mulberry32).
 *
 * Its whole state is one unsigned 32-bit integer, so it can be stored in a
 * checkpoint or a Q-table file and resumed exactly. Every consumer (batch
 * sampler, agent, fake model noise) owns its own generator, derived from the
 * run seed with {@link deriveSeed}, so that one consumer drawing more numbers
 * never shifts another's stream.
 * @since 0.1.0
 */
import { Schema } from "effect"

/** The state of a generator: an unsigned 32-bit integer. */
export const RngState = Schema.Number.pipe(Schema.int(), Schema.between(0, 0xffffffff))
export type RngState = typeof RngState.Type

/** Hash a seed and a stream name into an independent generator state. */
export const deriveSeed = (seed: number, stream: string): RngState => {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ 0x85ebca6b) >>> 0
  for (let i = 0; i < stream.length; i++) {
    h = Math.imul(h ^ stream.charCodeAt(i), 0x01000193) >>> 0
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x7feb352d) >>> 0
  h ^= h >>> 15
  return h >>> 0
}

/** One draw: a float in [0, 1) and the next state. */
export const nextFloat = (state: RngState): readonly [number, RngState] => {
  const next = (state + 0x6d2b79f5) >>> 0
  let t = next
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return [((t ^ (t >>> 14)) >>> 0) / 4294967296, next]
}

/** An integer in [0, n) and the next state. */
export const nextInt = (state: RngState, n: number): readonly [number, RngState] => {
  const [u, next] = nextFloat(state)
  return [Math.floor(u * n), next]
}

/** A standard normal draw (Box-Muller) and the next state. */
export const nextNormal = (state: RngState): readonly [number, RngState] => {
  const [u1, s1] = nextFloat(state)
  const [u2, s2] = nextFloat(s1)
  const r = Math.sqrt(-2 * Math.log(1 - u1))
  return [r * Math.cos(2 * Math.PI * u2), s2]
}
