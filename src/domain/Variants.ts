/**
 * The named variants of the experiments (SPEC §6): the paper's and the
 * controls that make the comparison fair. A variant fixes the policy and,
 * for the ablations, the peak LR.
 * @since 0.1.0
 */
import { QLearningSettings, type PolicyConfig } from "./Config.js"
import { initialLrAblation } from "./Presets.js"

/** The named variants of SPEC §6: the paper's (baseline, agent, its ablations) and the controls. */
export const VariantNames = [
  "baseline",
  "qlearning",
  "initial-lr",
  "reward-signal",
  "epsilon-decay",
  "constant",
  "baseline-high-lr",
  "exp-decay",
  "random"
] as const
/** One of {@link VariantNames}. */
export type VariantName = (typeof VariantNames)[number]

/** Whether `name` is one of {@link VariantNames}. */
export const isVariantName = (name: string): name is VariantName => (VariantNames as ReadonlyArray<string>).includes(name)

/** The policy kinds `--policy` accepts; `random` is the agent with epsilon 1 (no learning shows). */
export const PolicyNames = ["constant", "cosine", "exp-decay", "qlearning", "random"] as const
/** One of {@link PolicyNames}. */
export type PolicyName = (typeof PolicyNames)[number]

/** The default policy config for a `--policy` name. */
export const policyFor = (name: PolicyName): PolicyConfig => {
  switch (name) {
    case "constant":
    case "cosine":
      return { kind: name }
    case "exp-decay":
      return { kind: "exp-decay", factor: 0.9 }
    case "qlearning":
      return QLearningSettings.make({ kind: "qlearning" })
    case "random":
      return QLearningSettings.make({ kind: "qlearning", epsilon: 1 })
  }
}

/** A variant's policy, and its peak LR given the preset's. */
export const variantSettings = (
  variant: VariantName,
  presetLr: number
): { readonly policy: PolicyConfig; readonly learning_rate: number } => {
  const agent = (fields: Partial<QLearningSettings>) => QLearningSettings.make({ kind: "qlearning", ...fields })
  const high = initialLrAblation(presetLr)
  switch (variant) {
    case "baseline":
      return { policy: policyFor("cosine"), learning_rate: presetLr }
    case "qlearning":
      return { policy: policyFor("qlearning"), learning_rate: presetLr }
    case "initial-lr":
      return { policy: policyFor("qlearning"), learning_rate: high }
    case "reward-signal":
      return { policy: agent({ reward: "best-improvement" }), learning_rate: high }
    case "epsilon-decay":
      return {
        policy: agent({ reward: "best-improvement", epsilon_decay: 0.99, epsilon_decay_on: "random" }),
        learning_rate: high
      }
    case "constant":
      return { policy: policyFor("constant"), learning_rate: presetLr }
    case "baseline-high-lr":
      return { policy: policyFor("cosine"), learning_rate: high }
    case "exp-decay":
      return { policy: policyFor("exp-decay"), learning_rate: presetLr }
    case "random":
      return { policy: policyFor("random"), learning_rate: presetLr }
  }
}
