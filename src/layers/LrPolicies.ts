/**
 * One Layer per LR controller, and one that picks the controller a run's
 * config names. Swapping this layer switches baseline vs agent.
 * @since 0.1.0
 */
import { Layer } from "effect"
import type { QLearningSettings, TrainConfig } from "../domain/Config.js"
import { constantPolicy, cosinePolicy, expDecayPolicy, type AnyLrPolicy, type ScheduleSettings } from "../domain/Policy.js"
import { qlearningPolicy, type AgentState } from "../domain/QLearning.js"
import { LrPolicy } from "../services/LrPolicy.js"

/** The pure policy a run's config names. `agentStart` replaces a fresh agent's state (`--q-table-in`). */
export const policyOfConfig = (config: TrainConfig, agentStart?: AgentState): AnyLrPolicy => {
  const p = config.policy
  switch (p.kind) {
    case "constant":
      return constantPolicy(config)
    case "cosine":
      return cosinePolicy(config)
    case "exp-decay":
      return expDecayPolicy(config, p.factor)
    case "qlearning": {
      const agent = qlearningPolicy(p, config, config.seed)
      return agentStart === undefined ? agent : { ...agent, initial: agentStart }
    }
  }
}

/** One LrPolicy layer per built-in controller, and `fromConfig`, the one a run's config names. */
export const LrPolicies = {
  /** The peak LR throughout. */
  constant: (s: ScheduleSettings) => Layer.succeed(LrPolicy, constantPolicy(s)),
  /** The warmup-cosine baseline. */
  cosine: (s: ScheduleSettings) => Layer.succeed(LrPolicy, cosinePolicy(s)),
  /** LR x factor at every evaluation after warmup. */
  expDecay: (s: ScheduleSettings, factor: number) => Layer.succeed(LrPolicy, expDecayPolicy(s, factor)),
  /** The Q-learning agent. */
  qlearning: (settings: QLearningSettings, s: ScheduleSettings, seed: number) =>
    Layer.succeed(LrPolicy, qlearningPolicy(settings, s, seed)),
  /** The controller a run's config names. */
  fromConfig: (config: TrainConfig, agentStart?: AgentState) => Layer.succeed(LrPolicy, policyOfConfig(config, agentStart))
}
