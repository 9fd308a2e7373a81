/**
 * Training as a Stream of events. The LR policy is folded over the stream as
 * pure state transitions: before every step the loop asks `lrAt`, at every
 * evaluation it feeds the event to `onEval`, and the LR it gets back is the LR
 * the optimizer uses for every step until the next evaluation.
 * @since 0.1.0
 */
import { Chunk, Clock, Effect, Option, Stream } from "effect"
import { sampleBatch, splitBatch, type TokenArray } from "../domain/Batches.js"
import type { TrainConfig } from "../domain/Config.js"
import { DivergedError, type ModelError } from "../domain/Errors.js"
import { EvalEvent, StepEvent, type TrainEvent } from "../domain/Events.js"
import type { AnyLrPolicy } from "../domain/Policy.js"
import { deriveSeed, type RngState } from "../domain/Rng.js"
import type { PreparedDataset } from "../services/DatasetReader.js"
import { LrPolicy } from "../services/LrPolicy.js"
import { Model, type ModelSpec, type Trainer } from "../services/Model.js"

/** Everything the loop carries from one step to the next: what a checkpoint must hold. */
export interface LoopState {
  /** The next training step to run. */
  readonly iter: number
  /** Whether the evaluation at `iter` has run. */
  readonly evaluated: boolean
  readonly policyState: unknown
  readonly batchRng: RngState
  readonly evalRng: RngState
  /** The LR of the last training step (the LR "in force" at the next evaluation). */
  readonly lastLr: number
  /** Training seconds up to this state (a resumed run keeps counting from it). */
  readonly elapsed: number
}

/** The state a fresh run starts from. */
export const initialLoopState = (config: TrainConfig, policy: AnyLrPolicy): LoopState => ({
  iter: 0,
  evaluated: false,
  policyState: policy.initial,
  batchRng: deriveSeed(config.seed, "batches"),
  evalRng: deriveSeed(config.seed, "eval"),
  lastLr: policy.lrAt(policy.initial, 0),
  elapsed: 0
})

/** The model spec a config asks for. */
export const modelSpecOf = (config: TrainConfig, vocabSize: number): ModelSpec => ({
  shape: {
    vocab_size: vocabSize,
    n_layer: config.n_layer,
    n_head: config.n_head,
    n_embd: config.n_embd,
    block_size: config.block_size,
    dropout: config.dropout
  },
  optimizer: {
    weight_decay: config.weight_decay,
    beta1: config.beta1,
    beta2: config.beta2,
    grad_clip: config.grad_clip
  },
  seed: config.seed,
  micro_batch_size: config.micro_batch_size
})

/** The split evaluations report as `val_loss`: val, or test on explicit request. */
export const evalSplitOf = (config: TrainConfig, data: PreparedDataset): TokenArray =>
  config.eval_split === "test" && data.test !== null ? data.test : data.val

const isEvalIter = (config: TrainConfig, iter: number) => iter % config.eval_interval === 0 || iter === config.max_iters

/**
 * Mean loss over `eval_iters` random batches of a split, forward only. Rows
 * go through the model a micro-batch at a time, as training does.
 */
export const estimateLoss = (
  trainer: Trainer,
  config: TrainConfig,
  split: TokenArray,
  rng: RngState
): Effect.Effect<readonly [number, RngState], ModelError> =>
  Effect.gen(function*() {
    let state = rng
    let total = 0
    for (let k = 0; k < config.eval_iters; k++) {
      const [batch, next] = sampleBatch(split, config.batch_size, config.block_size, state)
      state = next
      const parts = splitBatch(batch, config.batch_size / config.micro_batch_size)
      for (const part of parts) total += (yield* trainer.evalLoss(part)) / parts.length
    }
    return [total / config.eval_iters, state] as const
  })

/** Options of the training stream. */
export interface TrainStreamOptions {
  /** Emit a step event every this many steps (terminal progress). */
  readonly logInterval?: number
  /** Resume from this loop state instead of a fresh start. */
  readonly from?: LoopState
  /** Called at every step boundary with the loop state (checkpoints). */
  readonly onState?: (state: LoopState) => Effect.Effect<void>
  /** Checked at every step boundary: true ends the stream there (Ctrl-C). */
  readonly stopWhen?: Effect.Effect<boolean>
}

/** The events of training `trainer` on `data` under the LrPolicy in context. */
export const trainEvents = (
  trainer: Trainer,
  config: TrainConfig,
  data: PreparedDataset,
  options: TrainStreamOptions = {}
): Stream.Stream<TrainEvent, ModelError | DivergedError, LrPolicy> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const policy = yield* LrPolicy
      const logInterval = options.logInterval ?? 10
      const tokensPerStep = config.batch_size * config.block_size
      const evalSplit = evalSplitOf(config, data)
      const startedAt = yield* Clock.currentTimeMillis
      const first = options.from ?? initialLoopState(config, policy)
      const elapsed = Effect.map(Clock.currentTimeMillis, (now) => first.elapsed + (now - startedAt) / 1000)
      let lastEval = { iter: first.iter, elapsed: first.elapsed }

      const evaluate = (s: LoopState) =>
        Effect.gen(function*() {
          // Throughput counts the steps since the last evaluation, not the evaluations.
          const before = yield* elapsed
          const steps = s.iter - lastEval.iter
          const seconds = before - lastEval.elapsed
          const [trainLoss, rng1] = yield* estimateLoss(trainer, config, data.train, s.evalRng)
          const [valLoss, rng2] = yield* estimateLoss(trainer, config, evalSplit, rng1)
          const outcome = policy.onEval(s.policyState, {
            iter: s.iter,
            train_loss: trainLoss,
            val_loss: valLoss,
            lr: s.lastLr
          })
          const now = yield* elapsed
          lastEval = { iter: s.iter, elapsed: now }
          const d = outcome.decision
          const event = EvalEvent.make({
            type: "eval",
            iter: s.iter,
            train_loss: trainLoss,
            val_loss: valLoss,
            lr: s.lastLr,
            next_lr: policy.lrAt(outcome.state, s.iter),
            tokens_per_second: steps > 0 && seconds > 0 ? (steps * tokensPerStep) / seconds : null,
            elapsed: now,
            ...(d === undefined ? {} : {
              state: d.state,
              action: d.action,
              action_index: d.action_index,
              reward: d.reward,
              epsilon: d.epsilon,
              q_values: d.q_values,
              random: d.random
            })
          })
          const next: LoopState = { ...s, evaluated: true, policyState: outcome.state, evalRng: rng2, elapsed: now }
          return [event, next] as const
        })

      const step = (s: LoopState) =>
        Effect.gen(function*() {
          const lr = policy.lrAt(s.policyState, s.iter)
          const [batch, batchRng] = sampleBatch(data.train, config.batch_size, config.block_size, s.batchRng)
          const loss = yield* trainer.trainStep(batch, lr)
          if (!Number.isFinite(loss)) {
            return yield* new DivergedError({
              iter: s.iter,
              loss,
              message: `training diverged at iteration ${s.iter}: the loss is ${loss} at LR ${lr.toExponential(3)}`
            })
          }
          const now = yield* elapsed
          const next: LoopState = { ...s, iter: s.iter + 1, evaluated: false, batchRng, lastLr: lr, elapsed: now }
          if (next.iter % logInterval !== 0) return [undefined, next] as const
          const rate = (next.iter - first.iter) / Math.max(1e-9, now - first.elapsed)
          const event = StepEvent.make({
            type: "step",
            iter: next.iter,
            loss,
            lr,
            tokens_per_second: rate * tokensPerStep,
            elapsed: now,
            eta: rate > 0 ? (config.max_iters - next.iter) / rate : 0
          })
          return [event, next] as const
        })

      const pull = (s: LoopState): Effect.Effect<
        Option.Option<readonly [Chunk.Chunk<TrainEvent>, LoopState]>,
        ModelError | DivergedError
      > => {
        const finished = s.iter > config.max_iters || (s.iter === config.max_iters && s.evaluated)
        return finished
          ? Effect.succeed(Option.none())
          : Effect.flatMap(options.stopWhen ?? Effect.succeed(false), (halt) => (halt ? Effect.succeed(Option.none()) : advance(s)))
      }

      const advance = (s: LoopState) => {
        const run: Effect.Effect<readonly [TrainEvent | undefined, LoopState], ModelError | DivergedError> =
          !s.evaluated && isEvalIter(config, s.iter) ? evaluate(s) : step(s)
        return run.pipe(
          Effect.tap(([, next]) => options.onState?.(next) ?? Effect.void),
          Effect.map(([event, next]) =>
            Option.some([event === undefined ? Chunk.empty<TrainEvent>() : Chunk.of<TrainEvent>(event), next] as const)
          )
        )
      }

      return Stream.unfoldChunkEffect(first, pull)
    })
  )

/** Training under the Model and LrPolicy in context: builds the model, then streams its events. */
export const train = (
  config: TrainConfig,
  data: PreparedDataset,
  options: TrainStreamOptions = {}
): Stream.Stream<TrainEvent, ModelError | DivergedError, Model | LrPolicy> =>
  Stream.unwrapScoped(
    Effect.map(Effect.flatMap(Model, (model) => model.create(modelSpecOf(config, data.symbols.length))), (trainer) =>
      trainEvents(trainer, config, data, options))
  )
