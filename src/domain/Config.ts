/**
 * Run configuration: the model shape, the training settings and the LR
 * policy, decoded by Schema so that a bad value gets a readable message.
 * Field names follow nanoGPT's train.py, so they read the same to users.
 * @since 0.1.0
 */
import { Schema } from "effect"

const PositiveInt = Schema.Number.pipe(Schema.int(), Schema.positive())
const NonNegativeInt = Schema.Number.pipe(Schema.int(), Schema.nonNegative())
const PositiveNumber = Schema.Number.pipe(Schema.finite(), Schema.positive())
const UnitInterval = Schema.Number.pipe(Schema.between(0, 1))

/** How the agent's state (val loss, LR) is discretised. */
export const StateDiscretisation = Schema.Union(
  /** The published code: val loss rounded to `val_decimals`, LR to `lr_decimals` (unbounded table). */
  Schema.Struct({
    kind: Schema.Literal("rounding"),
    val_decimals: Schema.optionalWith(NonNegativeInt, { default: () => 2 }),
    lr_decimals: Schema.optionalWith(NonNegativeInt, { default: () => 5 })
  }),
  /** A bounded table: fixed-width val-loss bins and log-spaced LR bins between the LR bounds. */
  Schema.Struct({
    kind: Schema.Literal("bins"),
    val_bin_width: Schema.optionalWith(PositiveNumber, { default: () => 0.25 }),
    val_max: Schema.optionalWith(PositiveNumber, { default: () => 5 }),
    lr_bins: Schema.optionalWith(PositiveInt, { default: () => 8 })
  })
)
export type StateDiscretisation = typeof StateDiscretisation.Type

/** The reward the agent receives at an evaluation. */
export const RewardKind = Schema.Literal("neg-val", "improvement", "best-improvement")
export type RewardKind = typeof RewardKind.Type

/** The Q-learning controller's settings; every default is the paper's. */
export class QLearningSettings extends Schema.Class<QLearningSettings>("QLearningSettings")({
  kind: Schema.Literal("qlearning"),
  alpha: Schema.optionalWith(UnitInterval, { default: () => 0.1 }),
  gamma: Schema.optionalWith(UnitInterval, { default: () => 0.9 }),
  epsilon: Schema.optionalWith(UnitInterval, { default: () => 0.1 }),
  /** Multiplicative epsilon decay; 1 means no decay. */
  epsilon_decay: Schema.optionalWith(UnitInterval, { default: () => 1 }),
  /** Apply the decay after each random action (published code) or after each decision. */
  epsilon_decay_on: Schema.optionalWith(Schema.Literal("random", "decision"), { default: () => "random" as const }),
  epsilon_min: Schema.optionalWith(UnitInterval, { default: () => 0 }),
  factors: Schema.optionalWith(
    Schema.NonEmptyArray(PositiveNumber).pipe(
      Schema.filter((f) => (f.length >= 2 && new Set(f).size === f.length) || `an agent needs at least two distinct actions (got ${f.join(", ")})`)
    ),
    { default: () => [0.9, 1.0, 1.1] as const }
  ),
  reward: Schema.optionalWith(RewardKind, { default: () => "neg-val" as const }),
  /** Upper LR bound; null means 10 x the peak LR. The lower bound is the run's min_lr. */
  max_lr: Schema.optionalWith(Schema.NullOr(PositiveNumber), { default: () => null }),
  tie_break: Schema.optionalWith(Schema.Literal("first", "random"), { default: () => "first" as const }),
  initial_q: Schema.optionalWith(Schema.Number.pipe(Schema.finite()), { default: () => 0 }),
  state: Schema.optionalWith(StateDiscretisation, {
    default: () => ({ kind: "rounding" as const, val_decimals: 2, lr_decimals: 5 })
  }),
  /** `own`: the agent's LR is the LR. `scale`: the agent scales the cosine baseline. */
  mode: Schema.optionalWith(Schema.Literal("own", "scale"), { default: () => "own" as const }),
  /** Follow the cosine warmup ramp before the agent takes over. */
  warmup: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** Penalty reward given for a NaN or infinite validation loss. */
  divergence_penalty: Schema.optionalWith(Schema.Number.pipe(Schema.finite()), { default: () => -10 })
}) {}

/** The LR policy of a run. */
export const PolicyConfig = Schema.Union(
  Schema.Struct({ kind: Schema.Literal("constant") }),
  Schema.Struct({ kind: Schema.Literal("cosine") }),
  /** LR x `factor` at every evaluation after warmup, floored at min_lr. */
  Schema.Struct({
    kind: Schema.Literal("exp-decay"),
    factor: Schema.optionalWith(PositiveNumber, { default: () => 0.9 })
  }),
  QLearningSettings
)
export type PolicyConfig = typeof PolicyConfig.Type

/** Every setting of a run, fully resolved. `qlr run --config` reads this back. */
export class TrainConfig extends Schema.Class<TrainConfig>("TrainConfig")(
  Schema.Struct({
  preset: Schema.Literal("tiny", "cpu", "paper"),
  dataset: Schema.NonEmptyString,
  encoding: Schema.Literal("chars", "bytes"),
  n_layer: PositiveInt,
  n_head: PositiveInt,
  n_embd: PositiveInt,
  block_size: PositiveInt,
  dropout: Schema.Number.pipe(Schema.between(0, 0.99)),
  batch_size: PositiveInt,
  /** Micro-batch for gradient accumulation; equal to batch_size means none. */
  micro_batch_size: PositiveInt,
  max_iters: PositiveInt,
  eval_interval: PositiveInt,
  eval_iters: PositiveInt,
  eval_split: Schema.Literal("val", "test"),
  learning_rate: PositiveNumber,
  min_lr: PositiveNumber,
  warmup_iters: NonNegativeInt,
  lr_decay_iters: PositiveInt,
  weight_decay: Schema.Number.pipe(Schema.nonNegative()),
  beta1: UnitInterval,
  beta2: UnitInterval,
  grad_clip: Schema.Number.pipe(Schema.nonNegative()),
  seed: Schema.Number.pipe(Schema.int()),
  /** On a NaN or infinite loss: stop (recording the divergence), or roll back to the last checkpoint. */
  on_divergence: Schema.optionalWith(Schema.Literal("stop", "rollback"), { default: () => "stop" as const }),
  /** Rollbacks allowed before the run stops as diverged. */
  max_rollbacks: Schema.optionalWith(NonNegativeInt, { default: () => 3 }),
  /** Each rollback multiplies the LR by this factor for the rest of the run. */
  rollback_lr_factor: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(1)), { default: () => 0.5 }),
  policy: PolicyConfig
  }).pipe(
  Schema.filter((c) => {
    if (c.n_embd % c.n_head !== 0)
      return `n_embd (${c.n_embd}) must be divisible by n_head (${c.n_head}); change --n-embd or --n-head`
    if (c.min_lr > c.learning_rate)
      return `min_lr (${c.min_lr}) must not exceed the peak LR (${c.learning_rate}); change --min-lr or --lr`
    if (c.policy.kind === "qlearning" && c.policy.max_lr !== null && c.policy.max_lr < c.learning_rate)
      return `the agent's max_lr (${c.policy.max_lr}) is below the peak LR (${c.learning_rate}), which it starts from; raise --max-lr or lower --lr`
    if (c.batch_size % c.micro_batch_size !== 0)
      return `batch_size (${c.batch_size}) must be a multiple of micro_batch_size (${c.micro_batch_size})`
    return true
  })
  )
) {}
