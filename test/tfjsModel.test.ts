import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, type Layer, type Scope } from "effect"
import { type Batch, sampleBatch } from "../src/domain/Batches.js"
import type { ModelError } from "../src/domain/Errors.js"
import { deriveSeed } from "../src/domain/Rng.js"
import { decays, type Formulation, initParams, loss, namedParameters } from "../src/layers/gpt.js"
import { loadBlas } from "../src/layers/blasKernels.js"
import { requireGpu, selectBackend } from "../src/layers/tfjsBackend.js"
import { TfjsModel, type TfjsModelOptions } from "../src/layers/TfjsModel.js"
import { Model, type ModelShape, type ModelSnapshot, type ModelSpec, type Trainer } from "../src/services/Model.js"
import * as tf from "@tensorflow/tfjs"

// Tiny shapes: every test takes seconds.
const spec = (shape: Partial<ModelShape> = {}, rest: Partial<ModelSpec> = {}): ModelSpec => ({
  shape: { vocab_size: 11, n_layer: 2, n_head: 2, n_embd: 16, block_size: 8, dropout: 0, ...shape },
  optimizer: { weight_decay: 0.1, beta1: 0.9, beta2: 0.99, grad_clip: 1.0 },
  seed: 7,
  micro_batch_size: 4,
  ...rest
})

/** A corpus with structure to learn: a repeating 10-token pattern. */
const pattern = Uint8Array.from({ length: 2000 }, (_, i) => i % 10)
/** Pseudo-random tokens, for gradients of every kind. */
const noise = Uint8Array.from({ length: 2000 }, (_, i) => (i * 7919 + (i >> 2) * 31) % 11)

const batches = (data: Uint8Array, n: number, batchSize = 4, blockSize = 8, seed = 1): ReadonlyArray<Batch> => {
  let rng = deriveSeed(seed, "test-batches")
  return Array.from({ length: n }, () => {
    const [b, next] = sampleBatch(data, batchSize, blockSize, rng)
    rng = next
    return b
  })
}

const create = (s: ModelSpec): Effect.Effect<Trainer, ModelError, Model | Scope.Scope> => Effect.flatMap(Model, (m) => m.create(s))

const train = (t: Trainer, bs: ReadonlyArray<Batch>, lr = 1e-3): Effect.Effect<Array<number>, ModelError> =>
  Effect.forEach(bs, (b) => t.trainStep(b, lr))

/** Largest absolute difference between two snapshots' tensors, matched by name. */
const maxDiff = (a: ModelSnapshot, b: ModelSnapshot): number => {
  const other = new Map(b.tensors.map((t) => [t.name, t.data]))
  return Math.max(...a.tensors.map((t) => Math.max(...t.data.map((x, i) => Math.abs(x - other.get(t.name)![i]!)))))
}

/** Train a fresh model of `s` on `bs` under `options`; its losses and final state. */
const run = (options: TfjsModelOptions, s: ModelSpec, bs: ReadonlyArray<Batch>, lr = 1e-3) =>
  Effect.gen(function* () {
    const t = yield* create(s)
    const losses = yield* train(t, bs, lr)
    return { losses, snapshot: yield* t.snapshot }
  }).pipe(Effect.scoped, Effect.provide(TfjsModel.layer(options)))

const wasm: Layer.Layer<Model, ModelError> = TfjsModel.layer({ backend: "wasm" })

describe("TfjsModel", () => {
  it.scoped("does not leak tensors: the live count after step 10 equals the count after step 100", () =>
    Effect.gen(function* () {
      const t = yield* create(spec({ n_layer: 1, dropout: 0.1 }, { micro_batch_size: 2 }))
      const bs = batches(noise, 100)
      yield* train(t, bs.slice(0, 10))
      const after10 = t.liveTensors()
      yield* train(t, bs.slice(10))
      yield* t.evalLoss(bs[0]!)
      expect(t.liveTensors()).toBe(after10)
    }).pipe(Effect.provide(wasm))
  )

  it.effect("closing the scope disposes the weights and the optimizer state", () =>
    Effect.gen(function* () {
      yield* selectBackend("wasm")
      const before = tf.memory().numTensors
      yield* run({ backend: "wasm" }, spec(), batches(noise, 2))
      expect(tf.memory().numTensors).toBe(before)
    })
  )

  it.effect("accumulating gradients over micro-batches equals one big batch", () =>
    Effect.gen(function* () {
      const bs = batches(noise, 3, 8)
      const whole = yield* run({ backend: "wasm" }, spec({}, { micro_batch_size: 8 }), bs)
      const micro = yield* run({ backend: "wasm" }, spec({}, { micro_batch_size: 2 }), bs)
      micro.losses.forEach((l, i) => expect(l).toBeCloseTo(whole.losses[i]!, 5))
      expect(maxDiff(whole.snapshot, micro.snapshot)).toBeLessThan(1e-5)
    })
  )

  it.effect("the custom 2-D matMul gradients equal tfjs autodiff's, dropout included", () =>
    Effect.gen(function* () {
      yield* selectBackend("cpu")
      const { shape } = spec({ dropout: 0.2 })
      const [b] = batches(noise, 1)
      const params = initParams(shape, 3)
      const variables = namedParameters(params).map(([, v]) => v)
      // Sharper attention than at init, so that the q and k gradients are not negligible.
      params.h.forEach((block) => tf.tidy(() => block.c_attn.assign(tf.mul(block.c_attn, 20))))
      const gradients = (formulation: Formulation) =>
        tf.tidy(() => {
          const [x, y] = [b!.x, b!.y].map((ids) => tf.tensor2d(ids, [4, 8], "int32")) as [tf.Tensor2D, tf.Tensor2D]
          const pass = { shape, formulation, dropoutSeed: 5 }
          const { value, grads } = tf.variableGrads(() => loss(params, pass, x, y), variables)
          return { loss: value.dataSync()[0]!, grads: variables.map((v) => grads[v.name]!.dataSync()) }
        })
      const autodiff = gradients("autodiff")
      const custom = gradients("matmul2d")
      variables.forEach((v) => v.dispose())
      expect(custom.loss).toBeCloseTo(autodiff.loss, 6)
      autodiff.grads.forEach((g, j) => {
        const scale = Math.max(...g.map(Math.abs))
        const worst = Math.max(...g.map((x, i) => Math.abs(x - custom.grads[j]![i]!)))
        expect(worst / scale).toBeLessThan(1e-4)
      })
    })
  )

  it.effect("training on wasm (custom gradients, contiguous-slice kernels) matches cpu with tfjs autodiff", () =>
    Effect.gen(function* () {
      const bs = batches(noise, 4)
      const s = spec({ dropout: 0.2 })
      const autodiff = yield* run({ backend: "cpu", formulation: "autodiff" }, s, bs)
      const onWasm = yield* run({ backend: "wasm" }, s, bs)
      onWasm.losses.forEach((l, i) => expect(l).toBeCloseTo(autodiff.losses[i]!, 5))
      expect(maxDiff(autodiff.snapshot, onWasm.snapshot)).toBeLessThan(1e-5)
    })
  )

  it.effect("the contiguous Slice/Unpack kernels on wasm give the same values as the original ones", () =>
    Effect.gen(function* () {
      yield* selectBackend("wasm")
      const values = Array.from({ length: 2 * 3 * 4 }, (_, i) => i)
      const [rows, cols, pieces] = tf.tidy(() => {
        const x = tf.tensor3d(values, [2, 3, 4])
        return [tf.slice(x, [1, 1, 0], [1, 2, 4]), tf.slice(x, [0, 1, 1], [2, 1, 2]), tf.unstack(x, 1)].map((t) =>
          Array.isArray(t) ? t.map((u) => Array.from(u.dataSync())) : Array.from(t.dataSync())
        )
      })
      expect(rows).toEqual([16, 17, 18, 19, 20, 21, 22, 23])
      expect(cols).toEqual([5, 6, 17, 18])
      expect(pieces).toEqual([[0, 1, 2, 3, 12, 13, 14, 15], [4, 5, 6, 7, 16, 17, 18, 19], [8, 9, 10, 11, 20, 21, 22, 23]])
    })
  )

  it.scoped("starts near ln(vocab) and learns a repeating pattern", () =>
    Effect.gen(function* () {
      const t = yield* create(spec())
      const bs = batches(pattern, 100)
      expect(Math.abs((yield* t.evalLoss(bs[0]!)) - Math.log(11))).toBeLessThan(0.1)
      yield* train(t, bs, 1e-2)
      expect(yield* t.evalLoss(batches(pattern, 1, 4, 8, 99)[0]!)).toBeLessThan(0.2)
    }).pipe(Effect.provide(wasm))
  )

  it.effect("applies weight decay to the 2-D weights only, decoupled as torch's AdamW", () =>
    Effect.gen(function* () {
      const lr = 0.01
      const wd = 0.5
      const bs = batches(noise, 1)
      const before = (yield* run({ backend: "wasm" }, spec(), [])).snapshot
      const plain = (yield* run({ backend: "wasm" }, spec({}, { optimizer: { ...spec().optimizer, weight_decay: 0 } }), bs, lr)).snapshot
      const decayed = (yield* run({ backend: "wasm" }, spec({}, { optimizer: { ...spec().optimizer, weight_decay: wd } }), bs, lr)).snapshot
      const find = (snap: ModelSnapshot, name: string) => snap.tensors.find((t) => t.name === name)!
      let matrices = 0
      for (const p of before.tensors.filter((t) => !t.name.startsWith("optimizer."))) {
        const [a, b] = [find(plain, p.name).data, find(decayed, p.name).data]
        // AdamW: p <- p - lr*wd*p - lr*adam(g); the Adam part is the same in both runs.
        const expected = p.shape.length >= 2 ? (i: number) => -lr * wd * p.data[i]! : () => 0
        if (p.shape.length >= 2) matrices++
        b.forEach((x, i) => expect(x - a[i]!).toBeCloseTo(expected(i), 6))
      }
      expect(matrices).toBe(2 + 4 * 2)
    })
  )

  it("groups parameters for decay as nanoGPT: embeddings and Linear weights, not LayerNorm gains", () => {
    const params = initParams(spec().shape, 1)
    const named = namedParameters(params)
    expect(named.filter(([, v]) => decays(v)).map(([n]) => n)).toEqual(named.filter(([n]) => !n.includes("ln_")).map(([n]) => n))
    named.forEach(([, v]) => v.dispose())
  })

  it.scoped("snapshot and restore continue training identically (weights, AdamW moments, step)", () =>
    Effect.gen(function* () {
      const s = spec({ dropout: 0.1 })
      const bs = batches(noise, 8)
      const a = yield* create(s)
      yield* train(a, bs.slice(0, 5))
      const saved = yield* a.snapshot
      expect(saved.step).toBe(5)
      const continued = yield* train(a, bs.slice(5))
      // Same spec (as a resumed run has): the restored state, not the init, must decide what follows.
      const b = yield* create(s)
      yield* b.restore(saved)
      expect(yield* train(b, bs.slice(5))).toEqual(continued)
      expect(maxDiff(yield* a.snapshot, yield* b.snapshot)).toBe(0)
      const wrongShape = yield* create(spec({ n_embd: 32 }))
      expect(Exit.isFailure(yield* Effect.exit(wrongShape.restore(saved)))).toBe(true)
    }).pipe(Effect.provide(wasm))
  )

  it.scoped("samples deterministically from the RNG it is given, past block_size", () =>
    Effect.gen(function* () {
      const t = yield* create(spec())
      const options = { maxNewTokens: 12, temperature: 0.8, topK: 5, rng: 42 }
      const first = yield* t.generate([1, 2, 3], options)
      expect(first.tokens).toHaveLength(12)
      expect(first.tokens.every((x) => Number.isInteger(x) && x >= 0 && x < 11)).toBe(true)
      expect(first.rng).not.toBe(42)
      expect(yield* t.generate([1, 2, 3], options)).toEqual(first)
      // Top-1 keeps only the most likely token: the draw no longer matters.
      const greedy = (rng: number) => t.generate([1, 2, 3], { ...options, topK: 1, rng })
      expect((yield* greedy(1)).tokens).toEqual((yield* greedy(2)).tokens)
    }).pipe(Effect.provide(wasm))
  )

  it.effect("selects wasm (wasm-blas when its addon is built) for auto when no tfjs-node is installed; tensorflow fails with the install command", () =>
    Effect.gen(function* () {
      const auto = yield* selectBackend("auto")
      expect(auto).toMatchObject({ backend: loadBlas()._tag === "Loaded" ? "wasm-blas" : "wasm", gpu: false })
      expect(tf.getBackend()).toBe("wasm")
      const error = yield* Effect.flip(selectBackend("tensorflow"))
      expect(error._tag).toBe("ModelError")
      expect(error.message).toContain("npm install @tensorflow/tfjs-node@")
      expect((yield* Effect.flip(requireGpu(auto))).message).toContain("a GPU is required")
    })
  )

  it.scoped("counts parameters as nanoGPT (tied head once)", () =>
    Effect.gen(function* () {
      const shape = { vocab_size: 65, n_layer: 2, n_head: 2, n_embd: 32, block_size: 16, dropout: 0 }
      const t = yield* create(spec(shape))
      const { vocab_size: V, n_layer: L, n_embd: C, block_size: T } = shape
      expect(t.parameterCount).toBe(V * C + T * C + L * (12 * C * C + 2 * C) + C)
    }).pipe(Effect.provide(wasm))
  )
})
