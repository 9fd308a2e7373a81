/**
 * The wasm-blas backend (native BLAS addon, ./src/layers/blasKernels.ts)
 * computes what plain wasm computes: the same products and the same training
 * losses and weights up to float rounding. Skipped, saying why, when the
 * addon is not built (`npm run build:native` after `apt-get install libopenblas-dev`).
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { sampleBatch } from "../src/domain/Batches.js"
import { deriveSeed } from "../src/domain/Rng.js"
import { AdamWUpdate, type AdamWUpdateAttrs, loadBlas } from "../src/layers/blasKernels.js"
import { selectBackend } from "../src/layers/tfjsBackend.js"
import { TfjsModel, type TfjsModelOptions } from "../src/layers/TfjsModel.js"
import { Model, type ModelSnapshot, type ModelSpec } from "../src/services/Model.js"

const blas = loadBlas()
const skipReason = blas._tag === "Unavailable" ? ` (skipped: ${blas.reason})` : ""

const spec: ModelSpec = {
  shape: { vocab_size: 11, n_layer: 2, n_head: 2, n_embd: 16, block_size: 8, dropout: 0.1 },
  optimizer: { weight_decay: 0.1, beta1: 0.9, beta2: 0.99, grad_clip: 1.0 },
  seed: 7,
  micro_batch_size: 4
}

const noise = Uint8Array.from({ length: 2000 }, (_, i) => (i * 7919 + (i >> 2) * 31) % 11)

/** Six batches of 8 rows: each step accumulates two micro-batches. */
const batches = (() => {
  let rng = deriveSeed(1, "blas-batches")
  return Array.from({ length: 6 }, () => {
    const [b, next] = sampleBatch(noise, 8, 8, rng)
    rng = next
    return b
  })
})()

/** Losses and final weights of a fresh model trained on `batches`; its evaluation loss; the backend it ran on. */
const train = (options: TfjsModelOptions) =>
  Effect.gen(function* () {
    const t = yield* Effect.flatMap(Model, (m) => m.create(spec))
    const losses = yield* Effect.forEach(batches, (b) => t.trainStep(b, 3e-3))
    const evalLoss = yield* t.evalLoss(batches[0]!)
    return { losses, evalLoss, snapshot: yield* t.snapshot, backend: t.info.backend, formulation: options.formulation }
  }).pipe(Effect.scoped, Effect.provide(TfjsModel.layer(options)))

const maxDiff = (a: ModelSnapshot, b: ModelSnapshot): number => {
  const other = new Map(b.tensors.map((t) => [t.name, t.data]))
  return Math.max(...a.tensors.map((t) => Math.max(...t.data.map((x, i) => Math.abs(x - other.get(t.name)![i]!)))))
}

describe.skipIf(blas._tag === "Unavailable")(`native BLAS${skipReason}`, () => {
  it.effect("matMul with every transpose and broadcast equals plain wasm's", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [Array<number>, Array<number>, boolean, boolean]> = [
        [[5, 7], [7, 3], false, false],
        [[7, 5], [7, 3], true, false],
        [[5, 7], [3, 7], false, true],
        [[7, 5], [3, 7], true, true],
        [[4, 7, 5], [4, 3, 7], true, true],
        [[4, 5, 7], [7, 3], false, false],
        [[1, 5, 7], [4, 7, 3], false, false],
        [[2, 3, 5, 7], [2, 3, 7, 1], false, false]
      ]
      const products = () =>
        cases.map(([sa, sb, ta, tb]) =>
          tf.tidy(() => {
            const a = tf.randomNormal(sa, 0, 1, "float32", 1)
            const b = tf.randomNormal(sb, 0, 1, "float32", 2)
            const bias = tf.randomNormal([tb ? sb.at(-2)! : sb.at(-1)!], 0, 1, "float32", 3)
            return {
              plain: tf.matMul(a, b, ta, tb).arraySync(),
              // Fused with a bias: the original XNNPACK kernel (fallback path).
              fused: tf.fused.matMul({ a, b, transposeA: ta, transposeB: tb, bias }).arraySync()
            }
          })
        )
      yield* selectBackend("wasm")
      const before = tf.memory().numTensors
      const plain = products()
      yield* selectBackend("wasm-blas")
      const native = products()
      expect(tf.memory().numTensors).toBe(before)
      native.forEach((n, i) => {
        const flat = (x: unknown) => [x].flat(4) as Array<number>
        const [p, q] = [flat(plain[i]!.plain), flat(n.plain)]
        expect(q).toHaveLength(p.length)
        q.forEach((x, j) => expect(x).toBeCloseTo(p[j]!, 5))
        flat(n.fused).forEach((x, j) => expect(x).toBeCloseTo(flat(plain[i]!.fused)[j]!, 5))
      })
    })
  )

  it.effect("training steps on wasm-blas give plain wasm's losses and weights (dropout, accumulation, both formulations)", () =>
    Effect.gen(function* () {
      const reference = yield* train({ backend: "wasm" })
      expect(reference.backend).toBe("wasm")
      for (const formulation of [undefined, "matmul2d", "autodiff"] as const) {
        const native = yield* train({ backend: "wasm-blas", ...(formulation === undefined ? {} : { formulation }) })
        expect(native.backend).toBe("wasm-blas")
        native.losses.forEach((l, i) => expect(l).toBeCloseTo(reference.losses[i]!, 4))
        expect(native.evalLoss).toBeCloseTo(reference.evalLoss, 4)
        expect(maxDiff(native.snapshot, reference.snapshot)).toBeLessThan(1e-4)
      }
    })
  )

  it.effect("auto picks wasm-blas and says so; switching back to wasm restores XNNPACK's kernels", () =>
    Effect.gen(function* () {
      const auto = yield* selectBackend("auto")
      expect(auto).toMatchObject({ backend: "wasm-blas", gpu: false })
      expect(auto.description).toContain("native BLAS (OpenBLAS")
      expect(tf.getBackend()).toBe("wasm")
      const native = tf.getKernel(tf.BatchMatMul, "wasm")!.kernelFunc
      yield* selectBackend("wasm")
      expect(tf.getKernel(tf.BatchMatMul, "wasm")!.kernelFunc).not.toBe(native)
      // wasm has no UnsortedSegmentSum (gather's gradient); wasm-blas brings one.
      expect(tf.getKernel(tf.UnsortedSegmentSum, "wasm")).toBeUndefined()
    })
  )

  it.effect("exp, erf, gather and same-dtype cast equal plain wasm's, special values included", () =>
    Effect.gen(function* () {
      const values = [0, -0, 1e-8, -0.5, 0.5, 1, -3, 3, 10, -10, 88.7, 89, -104, -120, Infinity, -Infinity, NaN]
      const ops = () =>
        tf.tidy(() => {
          const x = tf.tensor1d(Array.from({ length: 37 }, (_, i) => values[i % values.length]! + (i >= values.length ? 0.25 : 0)))
          const table = tf.tensor2d([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
          return {
            exp: Array.from(tf.exp(x).dataSync()),
            erf: Array.from(tf.erf(x).dataSync()),
            gather: tf.gather(table, tf.tensor2d([[2, 0], [1, 1]], [2, 2], "int32")).arraySync(),
            cast: Array.from(tf.cast(x, "float32").dataSync())
          }
        })
      yield* selectBackend("wasm")
      const plain = ops()
      yield* selectBackend("wasm-blas")
      const native = ops()
      // Within a few float ulps; infinities and NaN exactly.
      const close = (a: Array<number>, b: Array<number>) =>
        a.forEach((x, i) =>
          Number.isFinite(b[i]!) ? expect(Math.abs(x - b[i]!)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(b[i]!))) : expect(x).toBe(b[i])
        )
      close(native.exp, plain.exp)
      close(native.erf, plain.erf)
      expect(native.cast).toEqual(plain.cast)
      expect(native.gather).toEqual(plain.gather)
      expect(() => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], "int32")))).toThrow(/not in \[0, 2\]/)
    })
  )

  it.effect("sum and mean over any axes, kept or not, equal plain wasm's", () =>
    Effect.gen(function* () {
      const axes: ReadonlyArray<number | Array<number>> = [0, 1, 2, -1, [0, 1], [1, 2], [0, 1, 2], [0, 2]]
      const reductions = () =>
        tf.tidy(() => {
          const x = tf.randomNormal([3, 5, 7], 0, 1, "float32", 4)
          return axes.flatMap((axis) =>
            [false, true].flatMap((keepDims) => [tf.sum(x, axis, keepDims), tf.mean(x, axis, keepDims)].map((r) => ({ shape: r.shape, data: Array.from(r.dataSync()) })))
          )
        })
      yield* selectBackend("wasm")
      const plain = reductions()
      yield* selectBackend("wasm-blas")
      reductions().forEach((r, i) => {
        expect(r.shape).toEqual(plain[i]!.shape)
        r.data.forEach((x, j) => expect(x).toBeCloseTo(plain[i]!.data[j]!, 5))
      })
    })
  )

  it.scoped("leaks neither tensors nor wasm buffers (shared Identity and Cast buffers are counted)", () =>
    Effect.gen(function* () {
      const t = yield* Effect.flatMap(Model, (m) => m.create(spec)).pipe(Effect.provide(TfjsModel.layer({ backend: "wasm-blas" })))
      const buffers = () => (tf.engine().backend as unknown as { numDataIds: () => number }).numDataIds()
      yield* Effect.forEach(batches.slice(0, 3), (b) => t.trainStep(b, 1e-3))
      const [tensors, ids] = [t.liveTensors(), buffers()]
      for (let i = 0; i < 4; i++) yield* Effect.forEach(batches, (b) => t.trainStep(b, 1e-3))
      yield* t.evalLoss(batches[1]!)
      expect(t.liveTensors()).toBe(tensors)
      expect(buffers()).toBe(ids)
    })
  )

  it.effect("the fused AdamW kernel is torch's AdamW step (clipping factor, decoupled decay, bias correction)", () =>
    Effect.gen(function* () {
      yield* selectBackend("wasm-blas")
      const n = 1000
      const draw = (seed: number, scale = 1) => Array.from(tf.tidy(() => tf.randomNormal([n], 0, scale, "float32", seed).dataSync()))
      const [p, g, m] = [draw(1), draw(2, 3), draw(3, 0.1)]
      const v = draw(4, 0.1).map((x) => x * x)
      const [lr, wd, beta1, beta2, step, clip] = [3e-3, 0.1, 0.9, 0.99, 7, 0.25]
      const attrs: AdamWUpdateAttrs = {
        beta1,
        beta2,
        decay: 1 - lr * wd,
        stepSize: lr / (1 - beta1 ** step),
        sqrtBias2: Math.sqrt(1 - beta2 ** step),
        eps: 1e-8
      }
      const [pNext, mNext, vNext] = tf.tidy(() =>
        (tf.engine().runKernel(
          AdamWUpdate,
          { p: tf.tensor1d(p), g: tf.tensor1d(g), m: tf.tensor1d(m), v: tf.tensor1d(v), scale: tf.scalar(clip) },
          attrs as unknown as tf.NamedAttrMap
        ) as Array<tf.Tensor>).map((t) => Array.from(t.dataSync()))
      )
      // torch.optim.AdamW, in doubles.
      p.forEach((p0, i) => {
        const gi = g[i]! * clip
        const mi = beta1 * m[i]! + (1 - beta1) * gi
        const vi = beta2 * v[i]! + (1 - beta2) * gi * gi
        const mHat = mi / (1 - beta1 ** step)
        const vHat = vi / (1 - beta2 ** step)
        const expected = p0 * (1 - lr * wd) - (lr * mHat) / (Math.sqrt(vHat) + 1e-8)
        expect(mNext![i]).toBeCloseTo(mi, 6)
        expect(vNext![i]).toBeCloseTo(vi, 6)
        expect(Math.abs(pNext![i]! - expected)).toBeLessThan(1e-6 * Math.max(1, Math.abs(expected)))
      })
    })
  )

  it.effect("UnsortedSegmentSum sums rows by segment as the cpu backend does, dropping ids out of range", () =>
    Effect.gen(function* () {
      const x = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
      const ids = [2, 0, 2, -1, 7]
      yield* selectBackend("cpu")
      const expected = tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d(x), tf.tensor1d(ids, "int32"), 4).arraySync())
      yield* selectBackend("wasm-blas")
      expect(tf.tidy(() => tf.unsortedSegmentSum(tf.tensor2d(x), tf.tensor1d(ids, "int32"), 4).arraySync())).toEqual(expected)
    })
  )
})
