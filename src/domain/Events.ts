/**
 * The events a training run emits, as Schema classes: they are what
 * `events.jsonl` holds, one JSON object per line.
 * @since 0.1.0
 */
import { Schema } from "effect"

/** What an agent did at one evaluation. */
export class AgentDecision extends Schema.Class<AgentDecision>("AgentDecision")({
  /** The discretised state the action was chosen in, as a readable key. */
  state: Schema.String,
  /** Index of the chosen action in the factor list. */
  action_index: Schema.Number,
  /** The chosen LR multiplier. */
  action: Schema.Number,
  /** Reward for the previous action, observed at this evaluation (null at the first decision). */
  reward: Schema.NullOr(Schema.Number),
  /** Epsilon in force when the action was chosen. */
  epsilon: Schema.Number,
  /** Q-values of the state, in factor order, after this evaluation's update. */
  q_values: Schema.Array(Schema.Number),
  /** Whether the action was drawn at random (exploration). */
  random: Schema.Boolean
}) {}

/** One evaluation. `lr` was in force for the steps before it; `next_lr` is in force after it. */
export class EvalEvent extends Schema.Class<EvalEvent>("EvalEvent")({
  type: Schema.Literal("eval"),
  iter: Schema.Number,
  train_loss: Schema.Number,
  val_loss: Schema.Number,
  lr: Schema.Number,
  next_lr: Schema.Number,
  /** Training tokens per second since the previous evaluation (null at the first). */
  tokens_per_second: Schema.NullOr(Schema.Number),
  /** Seconds since training started. */
  elapsed: Schema.Number,
  state: Schema.optional(Schema.String),
  action: Schema.optional(Schema.Number),
  action_index: Schema.optional(Schema.Number),
  reward: Schema.optional(Schema.NullOr(Schema.Number)),
  epsilon: Schema.optional(Schema.Number),
  q_values: Schema.optional(Schema.Array(Schema.Number)),
  random: Schema.optional(Schema.Boolean)
}) {}

/** Progress between evaluations, for the terminal; not written to events.jsonl. */
export class StepEvent extends Schema.Class<StepEvent>("StepEvent")({
  type: Schema.Literal("step"),
  iter: Schema.Number,
  loss: Schema.Number,
  lr: Schema.Number,
  tokens_per_second: Schema.Number,
  elapsed: Schema.Number,
  /** Estimated seconds left, from the mean step time so far. */
  eta: Schema.Number
}) {}

/** Any event of the training stream: an evaluation or a progress step; `type` tells them apart. */
export type TrainEvent = EvalEvent | StepEvent

/** The flat per-run summary (SPEC §4, §6). */
export class FinalInfo extends Schema.Class<FinalInfo>("FinalInfo")({
  final_train_loss: Schema.Number,
  best_val_loss: Schema.Number,
  total_train_time: Schema.Number,
  avg_inference_tokens_per_second: Schema.NullOr(Schema.Number),
  test_loss: Schema.optional(Schema.Number),
  diverged: Schema.optional(Schema.Boolean),
  diverged_iter: Schema.optional(Schema.Number),
  /** Divergence rollbacks the run took (absent when none). */
  rollbacks: Schema.optional(Schema.Number)
}) {}
