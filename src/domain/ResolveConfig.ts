/**
 * From what a user typed (preset, dataset, variant or policy, overrides) to a
 * fully resolved {@link TrainConfig}, with one readable message on bad input.
 * @since 0.1.0
 */
import { Either, ParseResult, Schema } from "effect"
import { TrainConfig } from "./Config.js"
import { ConfigError } from "./Errors.js"
import { PresetNames, presetFields, type PresetName } from "./Presets.js"
import { isVariantName, PolicyNames, policyFor, variantSettings, VariantNames, type PolicyName } from "./Variants.js"

/** The numeric fields a flag may override, and the flag that does. */
export const OverrideFlags = {
  max_iters: "max-iters",
  eval_interval: "eval-interval",
  eval_iters: "eval-iters",
  batch_size: "batch-size",
  micro_batch_size: "micro-batch-size",
  block_size: "block-size",
  n_layer: "n-layer",
  n_head: "n-head",
  n_embd: "n-embd",
  dropout: "dropout",
  learning_rate: "lr",
  min_lr: "min-lr",
  warmup_iters: "warmup-iters",
  lr_decay_iters: "lr-decay-iters",
  weight_decay: "weight-decay",
  grad_clip: "grad-clip",
  seed: "seed"
} as const
/** A TrainConfig field that a command-line flag may override. */
export type OverridableField = keyof typeof OverrideFlags

/** What a user asked for; unset fields come from the preset. */
export interface RunRequest {
  readonly preset: string
  readonly dataset: string
  readonly encoding?: string | undefined
  /** A named variant of SPEC §6; wins over `policy`. */
  readonly variant?: string | undefined
  readonly policy?: string | undefined
  readonly eval_split?: string | undefined
  readonly overrides?: Partial<Record<OverridableField, number>> & {
    readonly on_divergence?: "stop" | "rollback"
    readonly max_rollbacks?: number
  }
  /** Agent settings laid over the policy's (ignored by schedules). */
  readonly agent?: Record<string, unknown>
}

const fail = (message: string) => Either.left(new ConfigError({ message }))

/** Dataset names accepted everywhere a dataset is named. */
export const isDatasetName = (name: string): boolean =>
  ["shakespeare_char", "enwik8", "text8"].includes(name) || (name.startsWith("file:") && name.length > 5)

/** The command-line flag of each agent setting (policy field). */
export const AgentFlags = {
  max_lr: "max-lr",
  alpha: "alpha",
  gamma: "gamma",
  epsilon: "epsilon",
  epsilon_decay: "epsilon-decay",
  epsilon_decay_on: "epsilon-decay-on",
  epsilon_min: "epsilon-min",
  reward: "reward",
  tie_break: "tie-break",
  mode: "agent-mode",
  state: "agent-state",
  factors: "agent-factors"
} as const

const pathText = (path: ReadonlyArray<PropertyKey>): string => {
  const [first, second] = path
  if (path.length === 1 && typeof first === "string" && first in OverrideFlags) return `--${OverrideFlags[first as OverridableField]} (${first})`
  if (first === "policy" && typeof second === "string" && second in AgentFlags) return `--${AgentFlags[second as keyof typeof AgentFlags]} (${path.map(String).join(".")})`
  return path.map(String).join(".")
}

/**
 * One line per problem, naming the flag or field. A union (the policy's
 * kinds) reports each member's complaint about a field: the first, the
 * member the field belongs to, is the one that says what is wrong.
 */
export const formatParseError = (error: ParseResult.ParseError): string => {
  const seen = new Set<string>()
  return ParseResult.ArrayFormatter.formatErrorSync(error)
    .flatMap((issue) => {
      const where = issue.path.length > 0 ? pathText(issue.path) : ""
      if (where !== "" && seen.has(where)) return []
      seen.add(where)
      return [where === "" ? issue.message : `${where}: ${issue.message}`]
    })
    .join("\n")
}

/** Decode a config file's JSON (e.g. a run's config.json) into a TrainConfig. */
export const decodeTrainConfig = (json: unknown): Either.Either<TrainConfig, ConfigError> =>
  Schema.decodeUnknownEither(TrainConfig)(json, { onExcessProperty: "ignore" }).pipe(
    Either.mapLeft((e) => new ConfigError({ message: `invalid config:\n${formatParseError(e)}` }))
  )

/** Resolve a request against its preset; every failure is one readable ConfigError. */
export const resolveConfig = (request: RunRequest): Either.Either<TrainConfig, ConfigError> => {
  if (!(PresetNames as ReadonlyArray<string>).includes(request.preset))
    return fail(`unknown preset '${request.preset}': use --preset with one of ${PresetNames.join(", ")}`)
  if (!isDatasetName(request.dataset))
    return fail(`unknown dataset '${request.dataset}': use --dataset with shakespeare_char, enwik8, text8 or file:PATH`)
  if (request.variant !== undefined && !isVariantName(request.variant))
    return fail(`unknown variant '${request.variant}': use --variant with one of ${VariantNames.join(", ")}`)
  const policyName = request.policy ?? "qlearning"
  if (!(PolicyNames as ReadonlyArray<string>).includes(policyName))
    return fail(`unknown policy '${policyName}': use --policy with one of ${PolicyNames.join(", ")}`)

  const preset = presetFields(request.preset as PresetName, request.dataset)
  const overrides = request.overrides ?? {}
  const fromVariant = request.variant !== undefined && isVariantName(request.variant)
    ? variantSettings(request.variant, overrides.learning_rate ?? preset.learning_rate)
    : { policy: policyFor(policyName as PolicyName), learning_rate: overrides.learning_rate ?? preset.learning_rate }
  const policy = fromVariant.policy.kind === "qlearning" && request.agent !== undefined
    ? { ...fromVariant.policy, ...request.agent }
    : fromVariant.policy
  const batchSize = overrides.batch_size ?? preset.batch_size
  const maxIters = overrides.max_iters ?? preset.max_iters
  const raw = {
    ...preset,
    // The decay horizon follows max_iters (SPEC §2) and the micro-batch the batch, unless set.
    lr_decay_iters: maxIters,
    micro_batch_size: batchSize,
    seed: 1337,
    ...overrides,
    learning_rate: fromVariant.learning_rate,
    preset: request.preset,
    dataset: request.dataset,
    encoding: request.encoding ?? (request.dataset === "enwik8" ? "bytes" : "chars"),
    eval_split: request.eval_split ?? "val",
    // Policy fields are plain JSON values, so the spread is already the encoded form.
    policy: { ...policy }
  }
  return decodeTrainConfig(raw)
}
