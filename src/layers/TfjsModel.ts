/**
 * The Model service on tfjs: the GPT of ./gpt.ts with AdamW exactly as
 * torch.optim.AdamW (bias correction, decoupled weight decay on the rank-2
 * weights only), global-norm gradient clipping before each update, and
 * gradient accumulation over micro-batches.
 *
 * Every step runs inside tf.tidy and disposes its gradients, so the number of
 * live tensors stays constant; closing the scope of `create` disposes the
 * weights and the optimizer state.
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer, type Scope } from "effect"
import { type Batch, splitBatch } from "../domain/Batches.js"
import { ModelError } from "../domain/Errors.js"
import { deriveSeed, type RngState } from "../domain/Rng.js"
import { type BackendInfo, Model, type ModelSnapshot, type ModelSpec, type Trainer } from "../services/Model.js"
import { AdamWUpdate, type AdamWUpdateAttrs } from "./blasKernels.js"
import * as Gpt from "./gpt.js"
import { type BackendChoice, ensureBackend, messageOf, selectBackend } from "./tfjsBackend.js"

/** How the tfjs Model runs: the backend, and the way the GPT's graph is written. */
export interface TfjsModelOptions {
  /** The tfjs backend; see {@link BackendChoice}. */
  readonly backend: BackendChoice
  /** Default: "autodiff" on tensorflow and wasm-blas (batched and transposed products are fast there), "matmul2d" (fast on wasm) elsewhere. */
  readonly formulation?: Gpt.Formulation
}

/** Run tfjs code, turning its exceptions into a ModelError that says what failed. */
const attempt = <A>(what: string, f: () => A): Effect.Effect<A, ModelError> =>
  Effect.try({
    try: f,
    catch: (e) => {
      const message = messageOf(e)
      const hint = /memory|OOM|alloc/i.test(message) ? "; it may have run out of memory: lower --micro-batch-size or --block-size" : ""
      return new ModelError({ message: `${what} failed: ${message}${hint}` })
    }
  })

const checkSpec = (spec: ModelSpec): Effect.Effect<void, ModelError> => {
  const { n_embd, n_head, vocab_size, n_layer, block_size } = spec.shape
  const problem =
    n_embd % n_head !== 0
      ? `n_embd (${n_embd}) must be divisible by n_head (${n_head})`
      : [vocab_size, n_layer, n_head, block_size, spec.micro_batch_size].some((n) => !Number.isInteger(n) || n < 1)
        ? "vocab_size, n_layer, n_head, block_size and micro_batch_size must be positive integers"
        : !(spec.shape.dropout >= 0 && spec.shape.dropout < 1)
          ? `dropout (${spec.shape.dropout}) must be in [0, 1)`
          : null
  return problem === null ? Effect.void : Effect.fail(new ModelError({ message: problem }))
}

/** torch's clip_grad_norm_ factor for the gradients: min(1, maxNorm / (global norm + 1e-6)). */
const clipScale = (grads: ReadonlyArray<tf.Tensor>, maxNorm: number): tf.Scalar => {
  const norm = tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g)))))
  return tf.minimum(tf.div(maxNorm, tf.add(norm, 1e-6)), 1)
}

/**
 * One parameter's AdamW update as tfjs ops: g = grad scale, m' = m beta1 +
 * g (1 - beta1), v' = v beta2 + g^2 (1 - beta2), p' = p decay - m' /
 * (sqrt(v') / sqrtBias2 + eps) stepSize. wasm-blas runs the same formula as
 * one native kernel ({@link AdamWUpdate}).
 */
const adamWOps = (
  { p, g, m, v, scale }: Record<"p" | "g" | "m" | "v" | "scale", tf.Tensor>,
  h: AdamWUpdateAttrs
): [tf.Tensor, tf.Tensor, tf.Tensor] => {
  const clipped = tf.mul(g, scale)
  const mNext = tf.add(tf.mul(m, h.beta1), tf.mul(clipped, 1 - h.beta1))
  const vNext = tf.add(tf.mul(v, h.beta2), tf.mul(tf.square(clipped), 1 - h.beta2))
  const denom = tf.add(tf.div(tf.sqrt(vNext), h.sqrtBias2), h.eps)
  return [tf.sub(tf.mul(p, h.decay), tf.mul(tf.div(mNext, denom), h.stepSize)), mNext, vNext]
}

const make = (
  spec: ModelSpec,
  info: BackendInfo,
  formulation: Gpt.Formulation
): Effect.Effect<Trainer, ModelError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* checkSpec(spec)
    yield* ensureBackend(info)
    const { shape, optimizer } = spec
    const model = yield* Effect.acquireRelease(
      attempt("building the GPT", () => {
        const params = Gpt.initParams(shape, spec.seed)
        const named = Gpt.namedParameters(params)
        const zeros = () => named.map(([, p]) => tf.tidy(() => tf.variable(tf.zerosLike(p), false)))
        return { params, named, exp_avg: zeros(), exp_avg_sq: zeros() }
      }),
      ({ named, exp_avg, exp_avg_sq }) =>
        Effect.sync(() => [...named.map(([, p]) => p), ...exp_avg, ...exp_avg_sq].forEach((v) => v.dispose()))
    )
    const { params, named, exp_avg, exp_avg_sq } = model
    const variables = named.map(([, p]) => p)
    const decayed = variables.map(Gpt.decays)
    let step = 0

    /** torch.optim.AdamW's update for every parameter, after clipping. */
    const adamW = (grads: ReadonlyArray<tf.Tensor>, lr: number): void => {
      step += 1
      const { beta1, beta2, weight_decay, grad_clip } = optimizer
      const scale = grad_clip > 0 ? clipScale(grads, grad_clip) : tf.scalar(1)
      const fused = tf.getKernel(AdamWUpdate, tf.getBackend()) !== undefined
      variables.forEach((p, j) => {
        const attrs: AdamWUpdateAttrs = {
          beta1,
          beta2,
          decay: decayed[j] && weight_decay > 0 ? 1 - lr * weight_decay : 1,
          stepSize: lr / (1 - beta1 ** step),
          sqrtBias2: Math.sqrt(1 - beta2 ** step),
          eps: 1e-8
        }
        const inputs = { p, g: grads[j]!, m: exp_avg[j]!, v: exp_avg_sq[j]!, scale }
        const [pNext, m, v] = fused
          ? (tf.engine().runKernel(AdamWUpdate, inputs, attrs as unknown as tf.NamedAttrMap) as Array<tf.Tensor>)
          : adamWOps(inputs, attrs)
        p.assign(pNext!)
        exp_avg[j]!.assign(m!)
        exp_avg_sq[j]!.assign(v!)
      })
    }

    /** The batch as micro-batches of at most micro_batch_size rows. */
    const microBatches = (batch: Batch): Effect.Effect<ReadonlyArray<Batch>, ModelError> => {
      const micro = spec.micro_batch_size
      if (batch.blockSize > shape.block_size)
        return Effect.fail(new ModelError({ message: `batch windows of ${batch.blockSize} tokens exceed block_size ${shape.block_size}` }))
      if (batch.batchSize <= micro) return Effect.succeed([batch])
      if (batch.batchSize % micro !== 0)
        return Effect.fail(
          new ModelError({ message: `batch size ${batch.batchSize} is not a multiple of micro_batch_size ${micro}` })
        )
      return Effect.succeed(splitBatch(batch, batch.batchSize / micro))
    }

    const tokens = (b: Batch, ids: Int32Array): tf.Tensor2D => tf.tensor2d(ids, [b.batchSize, b.blockSize], "int32")

    const trainStep = (batch: Batch, lr: number): Effect.Effect<number, ModelError> =>
      Effect.flatMap(microBatches(batch), (parts) =>
        attempt("training step", () => {
          const loss = tf.tidy(() => {
            let total: tf.Scalar = tf.scalar(0)
            let grads: Array<tf.Tensor> = []
            for (const [i, mb] of parts.entries()) {
              // Mean loss of each micro-batch / parts = mean loss of the whole batch.
              const pass: Gpt.Pass = { shape, formulation, dropoutSeed: deriveSeed(spec.seed, `dropout/${step}/${i}`) }
              const x = tokens(mb, mb.x)
              const y = tokens(mb, mb.y)
              const { value, grads: byName } = tf.variableGrads(() => tf.div(Gpt.loss(params, pass, x, y), parts.length), variables)
              const g = variables.map((v) => byName[v.name]!)
              total = tf.add(total, value)
              // Free each micro-batch's gradients as soon as they are summed.
              const sum = i === 0 ? g : grads.map((a, j) => tf.add(a, g[j]!))
              if (i > 0) tf.dispose([...grads, ...g])
              grads = sum
            }
            adamW(grads, lr)
            return total
          })
          const value = loss.dataSync()[0]!
          loss.dispose()
          return value
        })
      )

    const evalLoss = (batch: Batch): Effect.Effect<number, ModelError> =>
      Effect.flatMap(microBatches(batch), (parts) =>
        attempt("evaluation", () => {
          const pass: Gpt.Pass = { shape, formulation, dropoutSeed: null }
          // One tidy per micro-batch keeps at most one forward pass's intermediates alive.
          const losses = parts.map((mb) => tf.tidy(() => Gpt.loss(params, pass, tokens(mb, mb.x), tokens(mb, mb.y)).dataSync()[0]!))
          return losses.reduce((a, b) => a + b, 0) / losses.length
        })
      )

    const nextLogits = (context: ReadonlyArray<number>): Effect.Effect<Float32Array, ModelError> =>
      attempt("sampling", () => {
        const pass: Gpt.Pass = { shape, formulation, dropoutSeed: null }
        const window = context.slice(-shape.block_size)
        return tf.tidy(() => Float32Array.from(Gpt.nextLogits(params, pass, tf.tensor2d(window, [1, window.length], "int32")).dataSync()))
      })

    const generate: Trainer["generate"] = (prompt, options) =>
      Effect.gen(function* () {
        if (prompt.length === 0) return yield* new ModelError({ message: "sampling needs a prompt of at least one token" })
        if (!(options.temperature > 0) || !(options.topK >= 1))
          return yield* new ModelError({ message: "sampling needs temperature > 0 and top-k >= 1" })
        const context = [...prompt]
        const tokens: Array<number> = []
        let rng: RngState = options.rng
        for (let n = 0; n < options.maxNewTokens; n++) {
          const logits = yield* nextLogits(context)
          const [token, next] = Gpt.sampleToken(logits, options.temperature, options.topK, rng)
          rng = next
          context.push(token)
          tokens.push(token)
        }
        return { tokens, rng }
      })

    /** Weights under nanoGPT's names, then AdamW's moments under torch's state names. */
    const stateTensors = (): ReadonlyArray<readonly [string, tf.Variable]> => [
      ...named,
      ...named.map(([name], j) => [`optimizer.exp_avg.${name}`, exp_avg[j]!] as const),
      ...named.map(([name], j) => [`optimizer.exp_avg_sq.${name}`, exp_avg_sq[j]!] as const)
    ]

    const snapshot: Effect.Effect<ModelSnapshot, ModelError> = attempt("reading the weights", () => ({
      step,
      tensors: stateTensors().map(([name, v]) => ({ name, shape: [...v.shape], data: new Float32Array(v.dataSync()) }))
    }))

    const restore = (snap: ModelSnapshot): Effect.Effect<void, ModelError> =>
      Effect.gen(function* () {
        const byName = new Map(snap.tensors.map((t) => [t.name, t]))
        const targets = stateTensors()
        const mismatch = targets.find(([name, v]) => {
          const t = byName.get(name)
          return t === undefined || t.shape.length !== v.rank || t.shape.some((d, i) => d !== v.shape[i]) || t.data.length !== v.size
        })
        if (!Number.isInteger(snap.step) || snap.step < 0)
          return yield* new ModelError({ message: `the saved optimizer step (${snap.step}) is not a non-negative integer` })
        if (mismatch !== undefined || byName.size !== targets.length)
          return yield* new ModelError({
            message: `the saved weights do not fit this model${mismatch ? ` (${mismatch[0]} is missing or has another shape)` : ""}: was it saved with another shape or vocabulary?`
          })
        yield* attempt("restoring the weights", () =>
          targets.forEach(([name, v]) => tf.tidy(() => v.assign(tf.tensor(byName.get(name)!.data, v.shape))))
        )
        step = snap.step
      })

    return {
      info,
      parameterCount: variables.reduce((n, v) => n + v.size, 0),
      trainStep,
      evalLoss,
      generate,
      liveTensors: () => tf.memory().numTensors,
      snapshot,
      restore
    }
  })

export const TfjsModel = {
  /** The Model service on the chosen tfjs backend. */
  layer: (options: TfjsModelOptions): Layer.Layer<Model, ModelError> =>
    Layer.effect(
      Model,
      Effect.map(selectBackend(options.backend), (info) => {
        const formulation = options.formulation ?? (info.backend === "tensorflow" || info.backend === "wasm-blas" ? "autodiff" : "matmul2d")
        return Model.of({ create: (spec) => make(spec, info, formulation) })
      })
    )
}
