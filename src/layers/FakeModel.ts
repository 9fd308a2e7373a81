/**
 * A deterministic fake of the Model service for tests: no tensors,
 * microseconds per step, and a loss that is a documented function of the LR
 * history, so that controllers can be tested against a known landscape.
 *
 * The landscape (all parameters in {@link FakeLandscape}):
 * - progress: every step adds `lr / best_lr`, so a too-low LR is slow;
 * - instability: an exponential moving average of the LR (`lr_ema`, weight
 *   0.1 per step) above `best_lr` adds `instability * ln(lr_ema / best_lr)^2`,
 *   so a too-high LR hurts and keeps hurting until the LR comes down;
 * - loss = floor + (initial - floor) * exp(-progress / tau) + instability term;
 * - divergence: once `lr_ema > diverge_factor * best_lr` every loss is NaN;
 * - noise: each reported loss adds `noise * N(0,1)` from a generator seeded by
 *   the model seed, divided by sqrt(rows) for an evaluation batch average.
 * Train and val losses share the expectation (the fake cannot overfit).
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import { ModelError } from "../domain/Errors.js"
import { deriveSeed, nextInt, nextNormal, type RngState } from "../domain/Rng.js"
import { Model, type ModelSnapshot, type Trainer } from "../services/Model.js"

/** The fake loss landscape; see the module comment for the formula. */
export interface FakeLandscape {
  readonly initial: number
  readonly floor: number
  readonly best_lr: number
  readonly tau: number
  readonly instability: number
  readonly diverge_factor: number
  readonly noise: number
  /** Inject a NaN training loss at this step, once: a transient blow-up (divergence tests). */
  readonly nan_at_step: number | null
}

/** The landscape {@link FakeModel.layer} uses unless told otherwise: a minimum at LR 2e-3. */
export const defaultLandscape: FakeLandscape = {
  initial: Math.log(65),
  floor: 1.5,
  best_lr: 2e-3,
  tau: 150,
  instability: 1,
  diverge_factor: 20,
  noise: 0.01,
  nan_at_step: null
}

interface FakeState {
  readonly step: number
  readonly progress: number
  readonly lrEma: number
  readonly rng: RngState
}

/** The expected loss of the landscape at a point of the LR history. */
export const fakeExpectedLoss = (l: FakeLandscape, progress: number, lrEma: number): number => {
  if (lrEma > l.diverge_factor * l.best_lr) return Number.NaN
  const excess = Math.max(0, Math.log(lrEma / l.best_lr))
  return l.floor + (l.initial - l.floor) * Math.exp(-progress / l.tau) + l.instability * excess * excess
}

/** The snapshot holds the state as float64 values viewed as float32 pairs, so a restore is exact. */
const FIELD_COUNT = 4

const makeTrainer = (landscape: FakeLandscape, seed: number): Trainer => {
  let s: FakeState = { step: 0, progress: 0, lrEma: 0, rng: deriveSeed(seed, "fake-model") }
  // Outside the snapshot on purpose: a rollback past the blow-up does not replay it.
  let nanInjected = false
  const noisy = (expected: number, rows: number): number => {
    const [z, rng] = nextNormal(s.rng)
    s = { ...s, rng }
    return expected + (landscape.noise * z) / Math.sqrt(rows)
  }
  return {
    info: { backend: "fake", gpu: false, description: "deterministic fake model (no tensors)" },
    parameterCount: 0,
    trainStep: (_batch, lr) =>
      Effect.sync(() => {
        const lrEma = s.step === 0 ? lr : 0.9 * s.lrEma + 0.1 * lr
        s = { ...s, step: s.step + 1, progress: s.progress + lr / landscape.best_lr, lrEma }
        if (landscape.nan_at_step === s.step - 1 && !nanInjected) {
          nanInjected = true
          return Number.NaN
        }
        return noisy(fakeExpectedLoss(landscape, s.progress, s.lrEma), 1)
      }),
    evalLoss: (batch) =>
      Effect.sync(() => noisy(fakeExpectedLoss(landscape, s.progress, s.step === 0 ? 0 : s.lrEma), batch.batchSize)),
    generate: (prompt, options) =>
      Effect.sync(() => {
        let rng = options.rng
        const tokens: Array<number> = []
        const vocab = Math.max(1, ...prompt.map((t) => t + 1))
        for (let i = 0; i < options.maxNewTokens; i++) {
          const [t, next] = nextInt(rng, vocab)
          tokens.push(t)
          rng = next
        }
        return { tokens, rng }
      }),
    liveTensors: () => 0,
    snapshot: Effect.sync(
      (): ModelSnapshot => ({
        step: s.step,
        tensors: [{
          name: "fake_state",
          shape: [2 * FIELD_COUNT],
          data: new Float32Array(Float64Array.from([s.step, s.progress, s.lrEma, s.rng]).buffer)
        }]
      })
    ),
    restore: (snapshot) => {
      const raw = snapshot.tensors.find((t) => t.name === "fake_state")?.data
      if (raw === undefined || raw.length !== 2 * FIELD_COUNT)
        return Effect.fail(new ModelError({ message: "snapshot is not a fake-model snapshot" }))
      const data = new Float64Array(Float32Array.from(raw).buffer)
      return Effect.sync(() => {
        s = { step: data[0]!, progress: data[1]!, lrEma: data[2]!, rng: data[3]! >>> 0 }
      })
    }
  }
}

/** The fake Model layer, with an optional landscape override. */
export const FakeModel = {
  /** The fake Model layer; `landscape` overrides fields of {@link defaultLandscape}. */
  layer: (landscape: Partial<FakeLandscape> = {}): Layer.Layer<Model> =>
    Layer.succeed(Model, {
      create: (spec) => Effect.sync(() => makeTrainer({ ...defaultLandscape, ...landscape }, spec.seed))
    })
}
