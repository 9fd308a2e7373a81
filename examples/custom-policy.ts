/**
 * A user-written LR policy, run against the baseline.
 *
 * The policy is reduce-on-plateau: follow the warmup ramp, then hold the peak
 * LR and halve it whenever the val loss has not improved for `patience`
 * evaluations. Like every qlr policy it is pure: a state, `lrAt` (the LR of a
 * step) and `onEval` (the next state after an evaluation). Provided as a
 * Layer for the LrPolicy tag, it replaces the built-in controllers without
 * touching the training loop.
 *
 * Both runs use the deterministic fake model (FakeModel: a known loss
 * landscape, microseconds per step) on a small dataset held in memory.
 *
 * Run: npm run build && npx tsx examples/custom-policy.ts
 */
import { Chunk, Effect, Either, Layer, Schema, Stream } from "effect"
import {
  type EvalEvent,
  FakeModel,
  InMemoryDatasetReader,
  LrPolicies,
  LrPolicy,
  Policy,
  resolveConfig,
  Schedules,
  train,
  type TrainConfig
} from "qlr"

// ---------------------------------------------------------------------------
// The policy

/** Its state: the LR after warmup, the best val loss so far, evaluations since it improved. */
const PlateauState = Schema.Struct({
  lr: Schema.Number,
  best: Schema.NullOr(Schema.Number),
  stale: Schema.Number
})
type PlateauState = typeof PlateauState.Type

const reduceOnPlateau = (
  s: Policy.ScheduleSettings,
  { factor = 0.5, patience = 2, minDelta = 0.01 } = {}
): Policy.LrPolicy<PlateauState> => ({
  name: "reduce-on-plateau",
  initial: { lr: s.learning_rate, best: null, stale: 0 },
  // The schema lets qlr write the state into checkpoints and read it back.
  stateSchema: PlateauState,
  lrAt: (state, iter) => (Schedules.inWarmup(s, iter) ? Schedules.warmupCosineLr(s, iter) : state.lr),
  onEval: (state, { iter, val_loss }) => {
    if (Schedules.inWarmup(s, iter)) return { state }
    if (state.best === null || val_loss < state.best - minDelta) return { state: { ...state, best: val_loss, stale: 0 } }
    if (state.stale + 1 < patience) return { state: { ...state, stale: state.stale + 1 } }
    // No improvement for `patience` evaluations: lower the LR (not below min_lr) and start counting again.
    return { state: { ...state, lr: Math.max(s.min_lr, state.lr * factor), stale: 0 } }
  }
})

// ---------------------------------------------------------------------------
// Running it

/** A repetitive token stream over 16 symbols ("a" to "p"); the fake model does not read the tokens, but batches are drawn from them. */
const data = InMemoryDatasetReader.dataset(
  Uint8Array.from({ length: 20_000 }, (_, i) => (i * 7 + (i >> 3)) % 16),
  Array.from({ length: 16 }, (_, i) => 97 + i)
)

// The tiny preset, longer, with a peak LR above the fake landscape's best (2e-3): something for the policy to react to.
const config: TrainConfig = Either.getOrThrow(
  resolveConfig({
    preset: "tiny",
    dataset: "shakespeare_char",
    policy: "cosine",
    overrides: { max_iters: 600, eval_interval: 50, learning_rate: 6e-3, min_lr: 1e-4 }
  })
)

/** Train under the given LrPolicy layer; every evaluation event. */
const evaluations = (policy: Layer.Layer<LrPolicy>) =>
  train(config, data).pipe(
    Stream.filter((e): e is EvalEvent => e.type === "eval"),
    Stream.runCollect,
    Effect.map(Chunk.toReadonlyArray),
    Effect.provide(Layer.merge(FakeModel.layer(), policy))
  )

const describe = (label: string, events: ReadonlyArray<EvalEvent>) => {
  const last = events[events.length - 1]!
  const lrs = events.filter((e) => e.iter >= config.warmup_iters).map((e) => e.next_lr.toExponential(1))
  return `${label.padEnd(19)} final val loss ${last.val_loss.toFixed(4)}; distinct LRs chosen at evaluations: ${[...new Set(lrs)].join(" ")}`
}

const program = Effect.gen(function*() {
  const baseline = yield* evaluations(LrPolicies.cosine(config))
  const custom = yield* evaluations(Layer.succeed(LrPolicy, reduceOnPlateau(config)))
  console.log(`fake model, ${config.max_iters} iterations, peak LR ${config.learning_rate} (the landscape's best LR is 2e-3)`)
  console.log(describe("baseline (cosine):", baseline))
  console.log(describe("reduce-on-plateau:", custom))
})

Effect.runPromise(program).catch((e) => {
  console.error(e)
  process.exitCode = 1
})
