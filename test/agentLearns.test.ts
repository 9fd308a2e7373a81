/**
 * "Shown to learn": on the fake model's loss landscape (src/layers/FakeModel.ts)
 * an agent trained over episodes, its Q-table carried from one run to the
 * next, ends closer to the best LR and at a lower loss than a fresh agent and
 * than the random policy. Everything runs through the real training stream.
 *
 * The setup, and why each choice is needed for learning to be possible here:
 * - Peak LR 2e-4, ten times below the landscape's best: far from the best, so
 *   only an agent that learned to raise the LR gets there. The untrained
 *   default (zero table, tie-break first) lowers the LR at every new state.
 *   The best constant LR is found by a grid search, not assumed.
 * - max_lr 2e-2: room above the best while staying under the fake's
 *   divergence threshold (20 x its best_lr), since a divergence ends a run.
 * - States: bins with a single val-loss bin below 5 and 8 log-spaced LR bins.
 *   On this landscape the right action depends on the LR, not on the loss
 *   level; a val-loss dimension would multiply the states by 20 and leave each
 *   too rarely visited in 80 episodes.
 * - Factors 0.5 / 1 / 2, so that the 29 decisions of an episode can cross the
 *   LR range (x1.1 needs 24 decisions to gain a factor of 10).
 * - gamma 0.5 instead of the paper's 0.9: with reward -val the Q-values are
 *   about -val / (1 - gamma), dominated by the loss falling over time; a short
 *   horizon (about two evaluations) lets the few hundred updates per state
 *   separate the actions.
 * - Epsilon 0.3, x0.995 per decision down to 0.05, carried with the table.
 * Training episodes use run seeds of their own (transfer across seeds); the
 * three agents are compared on one evaluation run per seed, over 5 seeds.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Layer, Ref, Stream } from "effect"
import { QLearningSettings, type TrainConfig } from "../src/domain/Config.js"
import type { EvalEvent } from "../src/domain/Events.js"
import { constantPolicy, type LrPolicy as Policy } from "../src/domain/Policy.js"
import { type AgentState, qlearningPolicy, randomPolicy, withLoadedTable } from "../src/domain/QLearning.js"
import { train } from "../src/programs/train.js"
import { LrPolicy } from "../src/services/LrPolicy.js"
import { configOf, recordingFakeModel, syntheticDataset } from "./support/fixtures.js"

const data = syntheticDataset()
const SEEDS = [1, 2, 3, 4, 5]
const TRAINING_EPISODES = 80
const MAX_LR = 2e-2

const configFor = (seed: number, learningRate = 2e-4): TrainConfig =>
  configOf({
    policy: "constant",
    overrides: {
      max_iters: 600, eval_interval: 20, eval_iters: 2, batch_size: 4, block_size: 8,
      learning_rate: learningRate, min_lr: 1e-5, warmup_iters: 20, seed
    }
  })

const agent = QLearningSettings.make({
  kind: "qlearning",
  factors: [0.5, 1, 2],
  max_lr: MAX_LR,
  gamma: 0.5,
  epsilon: 0.3,
  epsilon_decay: 0.995,
  epsilon_decay_on: "decision",
  epsilon_min: 0.05,
  state: { kind: "bins", val_bin_width: 5, val_max: 5, lr_bins: 8 }
})

/** One run on the fake model: its evaluations, the LR of every step, and the policy's final state. */
const runEpisode = <S>(config: TrainConfig, policy: Policy<S>) =>
  Effect.gen(function*() {
    const lrs: Array<number> = []
    const last = yield* Ref.make(policy.initial)
    const evals = yield* train(config, data, { onState: (s) => Ref.set(last, s.policyState as S) }).pipe(
      Stream.filter((e): e is EvalEvent => e.type === "eval"),
      Stream.runCollect,
      Effect.provide(Layer.succeed(LrPolicy, policy)),
      Effect.provide(recordingFakeModel(lrs))
    )
    const evaluations = Chunk.toReadonlyArray(evals)
    return { finalVal: evaluations.at(-1)!.val_loss, lrs, finalState: yield* Ref.get(last) }
  })

/** The best constant LR of the landscape: a log grid over [min_lr, max_lr]. */
const bestConstantLr = Effect.gen(function*() {
  const grid = Array.from({ length: 25 }, (_, i) => 1e-5 * Math.pow(MAX_LR / 1e-5, i / 24))
  let best = { lr: Number.NaN, val: Number.POSITIVE_INFINITY }
  for (const lr of grid) {
    const config = configFor(1, lr)
    const { finalVal } = yield* runEpisode(config, constantPolicy(config))
    if (finalVal < best.val) best = { lr, val: finalVal }
  }
  return best.lr
})

/** The agent's policy for a run, continuing `table` when given. */
const agentFor = (config: TrainConfig, table: AgentState | null): Policy<AgentState> => {
  const fresh = qlearningPolicy(agent, config, config.seed)
  return table === null ? fresh : { ...fresh, initial: Either.getOrThrow(withLoadedTable(agent, config, config.seed, table)) }
}

const trainAgent = (seed: number) =>
  Effect.gen(function*() {
    let table: AgentState | null = null
    for (let episode = 0; episode < TRAINING_EPISODES; episode++) {
      const config = configFor(1000 * seed + episode)
      table = (yield* runEpisode(config, agentFor(config, table))).finalState
    }
    return table
  })

interface Outcome {
  readonly lrDistance: number
  readonly finalVal: number
}
type Agent = "learned" | "fresh" | "random"

const mean = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0) / xs.length

describe("the Q-learning agent on the fake landscape", () => {
  it.effect("learns: closer to the best LR and a lower final loss than a fresh agent and the random policy", () =>
    Effect.gen(function*() {
      const bestLr = yield* bestConstantLr
      // The grid lands near the fake's best_lr (2e-3), ten times above the peak the runs start from.
      expect(bestLr).toBeGreaterThan(1e-3)
      const results: Array<Record<Agent, Outcome>> = []
      for (const seed of SEEDS) {
        const config = configFor(seed)
        const table = yield* trainAgent(seed)
        const outcome = (run: { readonly finalVal: number; readonly lrs: ReadonlyArray<number> }): Outcome => ({
          // Distance in log space between the mean LR after the warmup and the best LR.
          lrDistance: Math.abs(Math.log(mean(run.lrs.slice(config.warmup_iters)) / bestLr)),
          finalVal: run.finalVal
        })
        results.push({
          learned: outcome(yield* runEpisode(config, agentFor(config, table))),
          fresh: outcome(yield* runEpisode(config, agentFor(config, null))),
          random: outcome(yield* runEpisode(config, randomPolicy(agent, config, config.seed)))
        })
      }
      const wins = (other: Exclude<Agent, "learned">, key: keyof Outcome) =>
        results.filter((r) => r.learned[key] < r[other][key]).length
      const avg = (who: Agent, key: keyof Outcome) =>
        mean(results.map((r) => r[who][key]))

      for (const other of ["fresh", "random"] as const) {
        // Every seed ends with its mean LR closer to the best...
        expect(wins(other, "lrDistance")).toBe(SEEDS.length)
        // ...and on average by a wide margin (a factor e^0.5 in LR).
        expect(avg("learned", "lrDistance") + 0.5).toBeLessThan(avg(other, "lrDistance"))
        // A lower final loss on average by a margin, and in at least 4 of 5 seeds: a random walk
        // sometimes passes near the best LR by luck.
        expect(avg("learned", "finalVal") + 0.2).toBeLessThan(avg(other, "finalVal"))
        expect(wins(other, "finalVal")).toBeGreaterThanOrEqual(SEEDS.length - 1)
      }
    }), 300_000)
})
