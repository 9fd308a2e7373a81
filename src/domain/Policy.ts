/**
 * The LR policy interface of SPEC §6: pure state plus two pure functions.
 * The training loop asks `lrAt` before every step and feeds every evaluation
 * to `onEval`, so a schedule changes the LR every step and an agent at
 * evaluations. Policies do no I/O; their state is a plain value that a
 * Schema can encode (for checkpoints and Q-table files).
 * @since 0.1.0
 */
import { Schema } from "effect"
import type { AgentDecision } from "./Events.js"
import type { TrainConfig } from "./Config.js"
import { clampLr, inWarmup, warmupCosineLr } from "./Schedules.js"

/** What a policy sees at an evaluation. */
export interface EvalObservation {
  readonly iter: number
  readonly train_loss: number
  readonly val_loss: number
  /** The LR in force for the steps just before this evaluation. */
  readonly lr: number
}

/** The result of feeding an evaluation to a policy. */
export interface EvalOutcome<S> {
  readonly state: S
  /** Present for agents: what was decided and why. */
  readonly decision?: AgentDecision
}

/** A learning-rate policy over a state `S`. */
export interface LrPolicy<S> {
  readonly name: string
  readonly initial: S
  /** Encodes the state to JSON and back (checkpoints, Q-table files). */
  readonly stateSchema: Schema.Schema<S, any>
  /** The LR of the training step at `iter` (asked before every step). */
  readonly lrAt: (state: S, iter: number) => number
  /** Feed an evaluation; the returned state sets the LR of the steps until the next one. */
  readonly onEval: (state: S, observation: EvalObservation) => EvalOutcome<S>
}

/** A policy whose state type is hidden, as the training loop holds it. */
export type AnyLrPolicy = LrPolicy<any>

/** The training settings a schedule reads. */
export type ScheduleSettings = Pick<TrainConfig, "learning_rate" | "min_lr" | "warmup_iters" | "lr_decay_iters">

/** A policy without state of its own. */
const stateless = (name: string, lrAt: (iter: number) => number): LrPolicy<null> => ({
  name,
  initial: null,
  stateSchema: Schema.Null,
  lrAt: (_state, iter) => lrAt(iter),
  onEval: (state) => ({ state })
})

/** The peak LR throughout. */
export const constantPolicy = (s: ScheduleSettings): LrPolicy<null> =>
  stateless("constant", () => s.learning_rate)

/** The baseline: warmup-cosine (SPEC §3). */
export const cosinePolicy = (s: ScheduleSettings): LrPolicy<null> =>
  stateless("cosine", (iter) => warmupCosineLr(s, iter))

/**
 * LR x `factor` at every evaluation after warmup, floored at min_lr: what a
 * paper agent that never learns amounts to (SPEC §3, §6). The state is the
 * LR after warmup.
 */
export const expDecayPolicy = (s: ScheduleSettings, factor: number): LrPolicy<number> => ({
  name: "exp-decay",
  initial: s.learning_rate,
  stateSchema: Schema.Number,
  lrAt: (lr, iter) => (inWarmup(s, iter) ? warmupCosineLr(s, iter) : lr),
  onEval: (lr, obs) => ({
    state: inWarmup(s, obs.iter) ? lr : clampLr(lr * factor, s.min_lr, Number.POSITIVE_INFINITY)
  })
})
