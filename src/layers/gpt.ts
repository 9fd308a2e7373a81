/**
 * The GPT of SPEC §1, after nanoGPT's model.py: token and learned position
 * embeddings, n_layer pre-LayerNorm blocks (causal multi-head self-attention,
 * then an MLP with 4x hidden width and GELU), a final LayerNorm and an LM head
 * tied to the token embedding. No biases; LayerNorm has a gain only.
 *
 * Weights are stored [in, out] (y = x W), the transpose of torch's Linear.
 *
 * Two formulations compute the same function:
 * - "autodiff": plain tfjs ops (gather, batched and transposed matMuls) and
 *   tfjs's own gradients: right for the native TensorFlow backend.
 * - "matmul2d": every matMul, forward and backward, is a plain 2-D matMul
 *   without transposes (custom gradients on pre-transposed operands,
 *   attention one batch x head at a time, one-hot embedding). On wasm only
 *   those take XNNPACK's fast path (transposed and batched ones are ~20x
 *   slower), and wasm has no kernel for gather's gradient.
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { deriveSeed, nextFloat, type RngState } from "../domain/Rng.js"
import type { ModelShape } from "../services/Model.js"

/**
 * How the GPT's graph is written: `autodiff` (batched ops, tfjs's gradients;
 * best on the native backend) or `matmul2d` (2-D matrix products with
 * hand-written gradients; fast on wasm).
 */
export type Formulation = "autodiff" | "matmul2d"

/** One transformer block's weights. */
export interface Block {
  readonly ln_1: tf.Variable
  readonly c_attn: tf.Variable
  readonly attn_c_proj: tf.Variable
  readonly ln_2: tf.Variable
  readonly c_fc: tf.Variable
  readonly mlp_c_proj: tf.Variable
}

export interface GptParams {
  readonly wte: tf.Variable
  readonly wpe: tf.Variable
  readonly h: ReadonlyArray<Block>
  readonly ln_f: tf.Variable
}

/** The parameters under nanoGPT's names, in its order; the tied LM head appears once (as wte). */
export const namedParameters = (p: GptParams): ReadonlyArray<readonly [string, tf.Variable]> => [
  ["transformer.wte.weight", p.wte],
  ["transformer.wpe.weight", p.wpe],
  ...p.h.flatMap((b, i): Array<readonly [string, tf.Variable]> => [
    [`transformer.h.${i}.ln_1.weight`, b.ln_1],
    [`transformer.h.${i}.attn.c_attn.weight`, b.c_attn],
    [`transformer.h.${i}.attn.c_proj.weight`, b.attn_c_proj],
    [`transformer.h.${i}.ln_2.weight`, b.ln_2],
    [`transformer.h.${i}.mlp.c_fc.weight`, b.c_fc],
    [`transformer.h.${i}.mlp.c_proj.weight`, b.mlp_c_proj]
  ]),
  ["transformer.ln_f.weight", p.ln_f]
]

/** nanoGPT's optimizer groups: weight decay on every parameter of rank >= 2 (embeddings, Linear weights), not on LayerNorm gains. */
export const decays = (v: tf.Variable): boolean => v.rank >= 2

/**
 * Fresh weights: normal(0, 0.02), the residual output projections
 * normal(0, 0.02/sqrt(2 n_layer)), LayerNorm gains 1. Each tensor draws
 * from its own seed, derived from `seed` and its name.
 */
export const initParams = (shape: ModelShape, seed: number): GptParams => {
  const { n_embd: C, n_layer: L } = shape
  const normal = (name: string, dims: Array<number>, std: number): tf.Variable =>
    tf.tidy(() => tf.variable(tf.randomNormal(dims, 0, std, "float32", deriveSeed(seed, name))))
  const ones = (): tf.Variable => tf.tidy(() => tf.variable(tf.ones([C])))
  const projStd = 0.02 / Math.sqrt(2 * L)
  return {
    wte: normal("wte", [shape.vocab_size, C], 0.02),
    wpe: normal("wpe", [shape.block_size, C], 0.02),
    h: Array.from({ length: L }, (_, i) => ({
      ln_1: ones(),
      c_attn: normal(`h.${i}.c_attn`, [C, 3 * C], 0.02),
      attn_c_proj: normal(`h.${i}.attn.c_proj`, [C, C], projStd),
      ln_2: ones(),
      c_fc: normal(`h.${i}.c_fc`, [C, 4 * C], 0.02),
      mlp_c_proj: normal(`h.${i}.mlp.c_proj`, [4 * C, C], projStd)
    })),
    ln_f: ones()
  }
}

/** How one forward pass runs. */
export interface Pass {
  readonly shape: ModelShape
  readonly formulation: Formulation
  /** Seeds this pass's dropout masks; null: no dropout (evaluation, sampling). */
  readonly dropoutSeed: number | null
}

/** tf.customGrad's argument type (tfjs does not export it). */
type CustomGradientFunc = Parameters<typeof tf.customGrad>[0]

// ---------------------------------------------------------------------------
// Building blocks. Each "matmul2d" op returns its gradient as plain 2-D matMuls.

const t2 = (x: tf.Tensor2D): tf.Tensor2D => tf.transpose(x)
const t3 = (x: tf.Tensor): tf.Tensor3D => tf.transpose(x as tf.Tensor3D, [0, 2, 1])

/**
 * x w, with dx = dy w^T and dw = x^T dy on explicitly transposed operands.
 * dw transposes the narrower of the activations x and dy (a large 2-D
 * transpose costs about as much as the matMul on wasm): x^T dy, or (dy^T x)^T.
 */
const matMul2d = tf.customGrad(((x: tf.Tensor2D, w: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([x, w])
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor2D, [x, w]: Array<tf.Tensor2D>) =>
      tf.tidy(() => [
        tf.matMul(dy, t2(w!)),
        x!.shape[1] <= dy.shape[1] ? tf.matMul(t2(x!), dy) : t2(tf.matMul(t2(dy), x!))
      ])
  }
}) as CustomGradientFunc)

const linear = (x: tf.Tensor2D, w: tf.Tensor2D, f: Formulation): tf.Tensor2D =>
  f === "matmul2d" ? (matMul2d(x, w) as tf.Tensor2D) : tf.matMul(x, w)

/** Batched product a[i] b[i] as one 2-D matMul per batch entry. */
const bmm = (a: tf.Tensor, b: tf.Tensor): tf.Tensor3D => {
  const bs = tf.unstack(b) as Array<tf.Tensor2D>
  return tf.stack((tf.unstack(a) as Array<tf.Tensor2D>).map((ai, i) => tf.matMul(ai, bs[i]!))) as tf.Tensor3D
}

/** One-hot rows as float32. Cast afterwards: wasm's OneHot kernel writes int32 bits whatever the dtype asked. */
const floatOneHot = (idx: tf.Tensor, depth: number): tf.Tensor2D =>
  tf.cast(tf.oneHot(idx as tf.Tensor1D, depth), "float32") as tf.Tensor2D

/** Token embedding rows for `idx`: gather, or one-hot x wte (gather's gradient has no wasm kernel). */
const embedTokens = (wte: tf.Tensor2D, idx: tf.Tensor1D, f: Formulation): tf.Tensor2D => {
  if (f === "autodiff") return tf.gather(wte, idx)
  const embed = tf.customGrad(((w: tf.Tensor2D, save: tf.GradSaveFunc) => {
    const oneHot = floatOneHot(idx, w.shape[0])
    save([oneHot])
    return {
      value: tf.matMul(oneHot, w),
      gradFunc: (dy: tf.Tensor2D, [oh]: Array<tf.Tensor2D>) => tf.tidy(() => tf.matMul(t2(oh!), dy))
    }
  }) as CustomGradientFunc)
  return embed(wte) as tf.Tensor2D
}

const layerNorm = (x: tf.Tensor2D, gain: tf.Tensor1D): tf.Tensor2D => {
  const { mean, variance } = tf.moments(x, -1, true)
  return tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, 1e-5))), gain)
}

/** The exact (erf) GELU, as torch's nn.GELU(). */
const gelu = (x: tf.Tensor2D): tf.Tensor2D => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1))

/** Inverted-dropout multiplier: 0 with probability `rate`, else 1/(1-rate). */
const keepMask = (shape: Array<number>, rate: number, seed: number): tf.Tensor =>
  tf.div(tf.cast(tf.greaterEqual(tf.randomUniform(shape, 0, 1, "float32", seed), rate), "float32"), 1 - rate)

/** The dropout multiplier of one site, or null when this pass has no dropout. */
const dropoutMask = (pass: Pass, site: string, shape: Array<number>): tf.Tensor | null =>
  pass.dropoutSeed === null || pass.shape.dropout === 0
    ? null
    : keepMask(shape, pass.shape.dropout, deriveSeed(pass.dropoutSeed, site))

const dropout = <T extends tf.Tensor>(x: T, pass: Pass, site: string): T => {
  const keep = dropoutMask(pass, site, x.shape)
  return keep === null ? x : tf.mul(x, keep)
}

/** Additive causal mask [T, T]: 0 where a position may attend, -1e9 above the diagonal. */
const causalMask = (T: number): tf.Tensor2D => {
  const m = new Float32Array(T * T)
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) m[i * T + j] = -1e9
  return tf.tensor2d(m, [T, T])
}

/** softmax(q k^T / sqrt(hs) + mask) [dropout] v, batched over [B*H, T, hs]. */
const attentionAutodiff = (q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, keep: tf.Tensor | null): tf.Tensor3D => {
  const T = q.shape[1]
  const att = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(q.shape[2])), causalMask(T)))
  return tf.matMul(keep === null ? att : tf.mul(att, keep), v)
}

/** The same attention with a hand-written gradient made of 2-D matMuls (one per batch x head). */
const attention2d = (q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, keep: tf.Tensor | null): tf.Tensor3D => {
  const scale = 1 / Math.sqrt(q.shape[2])
  const op = tf.customGrad(((q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, save: tf.GradSaveFunc) => {
    const att = tf.softmax(tf.add(tf.mul(bmm(q, t3(k)), scale), causalMask(q.shape[1])))
    save(keep === null ? [q, k, v, att] : [q, k, v, att, keep])
    return {
      value: bmm(keep === null ? att : tf.mul(att, keep), v),
      gradFunc: (dy: tf.Tensor3D, saved: Array<tf.Tensor>) =>
        tf.tidy(() => {
          const [q, k, v, att, keep] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor3D, tf.Tensor?]
          const attKept = keep === undefined ? att : tf.mul(att, keep)
          const dAttKept = bmm(dy, t3(v))
          const dAtt = keep === undefined ? dAttKept : tf.mul(dAttKept, keep)
          // softmax backward; masked entries have att = 0 and get no gradient.
          const dS = tf.mul(tf.mul(att, tf.sub(dAtt, tf.sum(tf.mul(dAtt, att), -1, true))), scale)
          return [bmm(dS, k), bmm(t3(dS), q), bmm(t3(attKept), dy)]
        })
    }
  }) as CustomGradientFunc)
  return op(q, k, v) as tf.Tensor3D
}

const selfAttention = (x: tf.Tensor2D, b: Block, pass: Pass, B: number, i: number): tf.Tensor2D => {
  const { n_head: H, n_embd: C } = pass.shape
  const T = x.shape[0] / B
  const hs = C / H
  // [B*T, 3C] -> [3, B*H, T, hs]: q, k and v of every (batch, head) as contiguous [T, hs] slices.
  // Two transposes of rank <= 4: wasm's rank-5 transpose is hundreds of times slower.
  const qkvRows = tf.transpose(tf.reshape(linear(x, b.c_attn as tf.Tensor2D, pass.formulation), [B * T, 3, C]), [1, 0, 2])
  const qkv = tf.reshape(tf.transpose(tf.reshape(qkvRows, [3 * B, T, H, hs]), [0, 2, 1, 3]), [3, B * H, T, hs])
  const [q, k, v] = tf.unstack(qkv) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D]
  const keep = dropoutMask(pass, `h.${i}.attn_dropout`, [B * H, T, T])
  const y = (pass.formulation === "matmul2d" ? attention2d : attentionAutodiff)(q, k, v, keep)
  const merged = tf.reshape(tf.transpose(tf.reshape(y, [B, H, T, hs]), [0, 2, 1, 3]), [B * T, C]) as tf.Tensor2D
  return dropout(linear(merged, b.attn_c_proj as tf.Tensor2D, pass.formulation), pass, `h.${i}.resid_dropout`)
}

const mlp = (x: tf.Tensor2D, b: Block, pass: Pass, i: number): tf.Tensor2D => {
  const f = pass.formulation
  return dropout(linear(gelu(linear(x, b.c_fc as tf.Tensor2D, f)), b.mlp_c_proj as tf.Tensor2D, f), pass, `h.${i}.mlp_dropout`)
}

/** The final hidden states [B*T, C] of token ids `idx` [B, T]. */
const hidden = (p: GptParams, pass: Pass, idx: tf.Tensor2D): tf.Tensor2D => {
  const [B, T] = idx.shape
  const C = pass.shape.n_embd
  const tok = embedTokens(p.wte as tf.Tensor2D, tf.reshape(idx, [B * T]), pass.formulation)
  const pos = tf.slice(p.wpe, [0, 0], [T, C])
  let x = dropout(tf.reshape(tf.add(tf.reshape(tok, [B, T, C]), pos), [B * T, C]) as tf.Tensor2D, pass, "drop")
  p.h.forEach((b, i) => {
    x = tf.add(x, selfAttention(layerNorm(x, b.ln_1 as tf.Tensor1D), b, pass, B, i))
    x = tf.add(x, mlp(layerNorm(x, b.ln_2 as tf.Tensor1D), b, pass, i))
  })
  return layerNorm(x, p.ln_f as tf.Tensor1D)
}

/** LM head tied to the token embedding. */
const logits = (p: GptParams, pass: Pass, h: tf.Tensor2D): tf.Tensor2D => linear(h, t2(p.wte as tf.Tensor2D), pass.formulation)

/** Mean cross-entropy over all B*T positions of next-token targets `y` [B, T]. */
export const loss = (p: GptParams, pass: Pass, x: tf.Tensor2D, y: tf.Tensor2D): tf.Scalar => {
  const logProbs = tf.logSoftmax(logits(p, pass, hidden(p, pass, x)))
  const targets = floatOneHot(tf.reshape(y, [-1]), pass.shape.vocab_size)
  return tf.neg(tf.mean(tf.sum(tf.mul(logProbs, targets), 1))) as tf.Scalar
}

/** Logits [vocab] of the token after the context `idx` [1, T] (T <= block_size). */
export const nextLogits = (p: GptParams, pass: Pass, idx: tf.Tensor2D): tf.Tensor1D => {
  const h = hidden(p, pass, idx)
  return tf.reshape(logits(p, pass, tf.slice(h, [h.shape[0] - 1, 0], [1, -1])), [-1])
}

/** Sample a token from `logits` as nanoGPT does: divide by the temperature, keep the top k, softmax, draw. */
export const sampleToken = (
  logits: Float32Array,
  temperature: number,
  topK: number,
  rng: RngState
): readonly [number, RngState] => {
  const scaled = Array.from(logits, (l) => l / temperature)
  const k = Math.min(topK, scaled.length)
  const kth = [...scaled].sort((a, b) => b - a)[k - 1]!
  const max = Math.max(...scaled)
  const weights = scaled.map((l) => (l < kth ? 0 : Math.exp(l - max)))
  const total = weights.reduce((a, b) => a + b, 0)
  const [u, next] = nextFloat(rng)
  let acc = 0
  let last = 0
  for (let i = 0; i < weights.length; i++) {
    if (weights[i] === 0) continue
    acc += weights[i]! / total
    last = i
    if (u < acc) return [i, next]
  }
  // Rounding left u above the last cumulative sum: the last kept token.
  return [last, next]
}
